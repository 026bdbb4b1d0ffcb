# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Multinomial text diffusion (Hoogeboom et al., 2021, Section 6.1), declared: presets, model arguments, build, card.
The run is [`hf_multinomial.training.run.train`]; all diffusion math is the scheduler's.

    from hf_multinomial.training import run, text_diffusion
    results = run.train(text_diffusion.TASK, run.parse_arguments(text_diffusion.TASK, ["--preset", "small"]))
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict

from ..data import CharVocabulary
from ..data.arguments import TextDataArguments, load_text_data
from ..models import MultinomialTransformer
from ..pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline
from ..schedulers import MultinomialScheduler
from .diffusion import DiffusionFamily
from .model_card import card_results, diffusion_bound, training_model_card
from .run import Task

_PAPER = dict(
    num_layers=12, hidden_size=512, num_heads=16, num_local_heads=8, local_window=128, mlp_ratio=4.0,
    dropout=0.0, position_embedding="learned", conv_kernel_size=0,
    train_batch_size=32, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=None,
    num_train_epochs=40, checkpointing_steps=5000, aux_loss_weight=0.0,
)
_SMALL = dict(
    vocabulary="text8", seq_len=256, num_train_timesteps=100,
    num_layers=3, hidden_size=128, num_heads=4, num_local_heads=2, local_window=4, mlp_ratio=4.0,
    dropout=0.0, position_embedding="learned", conv_kernel_size=5,
    train_batch_size=16, learning_rate=2e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=30, max_grad_norm=1.0,
    num_train_epochs=3, checkpointing_steps=250, aux_loss_weight=1.0,
)

# The paper's text models (Tables 6 and 7) and small ones. Every key can be overridden by a flag of the same name.
PRESETS: Dict[str, Dict[str, Any]] = {
    "text8": dict(_PAPER, vocabulary="text8", seq_len=256, num_train_timesteps=1000),
    "enwik8": dict(_PAPER, vocabulary="bytes", seq_len=320, num_train_timesteps=4000),
    # Leaves the unigram plateau within minutes on a 2-core CPU: three narrow layers after an input convolution,
    # local heads that see +-3 characters, T = 100, a high learning rate and the auxiliary jump loss.
    "small": _SMALL,
    # `hf-multinomial demo`: the small model for a time budget alone, with no checkpoints.
    "demo": dict(_SMALL, num_train_epochs=None, max_train_time_s=390.0, checkpointing_steps=None),
    # For tests: seconds per hundred steps.
    "tiny": dict(
        vocabulary="text8", seq_len=32, num_train_timesteps=10,
        num_layers=1, hidden_size=32, num_heads=2, num_local_heads=1, local_window=8, mlp_ratio=2.0,
        dropout=0.0, position_embedding="learned", conv_kernel_size=0,
        train_batch_size=8, learning_rate=3e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=20, aux_loss_weight=0.0,
    ),
}


@dataclass
class TextDiffusionArguments:
    """The denoiser ([`MultinomialTransformer`]) and the diffusion."""

    num_layers: int = 3
    hidden_size: int = 128
    num_heads: int = field(default=4, metadata={"help": "Attention heads per layer, global and local together."})
    num_local_heads: int = field(default=2, metadata={"help": "Of them, heads that attend within local_window."})
    local_window: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    position_embedding: str = field(default="learned", metadata={"choices": ["learned", "sinusoidal"]})
    conv_kernel_size: int = field(default=5, metadata={
        "help": "Width of the denoiser's input convolution (0: none, as in the paper)."})
    num_train_timesteps: int = field(default=100, metadata={"help": "T (the paper: 1000 text8, 4000 enwik8)."})
    aux_loss_weight: float = field(default=0.0, metadata={
        "help": "Weight of the auxiliary loss -log p(x_0 | x_t) of the reverse jump to the data "
                "(scheduler.jump_to_start_nll; same optimum as the ELBO; 0 = the paper's pure ELBO)."})

    def __post_init__(self):
        if self.aux_loss_weight < 0:
            raise ValueError(f"aux_loss_weight must be >= 0, got {self.aux_loss_weight}")


CARD_HYPERPARAMETERS = ("preset", "seq_len", "num_train_timesteps", "num_layers", "hidden_size", "num_heads",
                        "num_local_heads", "local_window", "mlp_ratio", "dropout", "position_embedding",
                        "conv_kernel_size", "train_batch_size", "gradient_accumulation_steps", "learning_rate",
                        "lr_decay_per_epoch", "lr_warmup_steps", "max_grad_norm", "aux_loss_weight",
                        "mixed_precision", "use_ema", "ema_decay", "seed")


def build(arguments, vocabulary: CharVocabulary) -> DiscreteDiffusionPipeline:
    model_args = asdict(arguments.model)
    num_train_timesteps = model_args.pop("num_train_timesteps")
    model_args.pop("aux_loss_weight")
    denoiser = MultinomialTransformer(num_classes=len(vocabulary), max_seq_len=arguments.data.seq_len,
                                      num_train_timesteps=num_train_timesteps, **model_args)
    scheduler = MultinomialScheduler(num_classes=len(vocabulary), num_train_timesteps=num_train_timesteps)
    return DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=scheduler, vocabulary=vocabulary)


def card(arguments, results: Dict[str, Any], samples):
    """The model card from `model_cards/text_diffusion.md`, with the one-t validation estimate in `model-index`."""
    data = arguments.data
    bound = diffusion_bound(arguments.model.num_train_timesteps, estimate=True)
    eval_results = card_results(results, "bpc", data, [
        ("validation_bpc_estimate", "validation", bound, "num_validation_examples")])
    return training_model_card(
        "text_diffusion", arguments, results, hyperparameter_keys=CARD_HYPERPARAMETERS,
        card_data_kwargs=dict(
            datasets=data.card_datasets(),
            language=["en"] if data.vocabulary == "text8" else None,
            tags=["multinomial-diffusion", "discrete-diffusion", "text-generation", "character-level",
                  "hf-multinomial"],
            pipeline_tag="text-generation",
        ),
        eval_results=eval_results,
        data_description=data.description(),
        samples=list(samples),
        vocabulary_size=len(data.make_vocabulary()),
    )


TASK = Task(
    name="text_diffusion",
    script="train_text_diffusion.py",
    description="Train a multinomial diffusion model on text (run with `accelerate launch`).",
    model_arguments=TextDiffusionArguments,
    data_arguments=TextDataArguments,
    presets=PRESETS,
    default_preset="small",
    default_output_dir="text-diffusion-model",
    unit="character",
    family=DiffusionFamily(),
    load_data=lambda arguments: load_text_data(arguments.data),
    build=build,
    card=card,
)
