# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Multinomial diffusion on segmentation maps (Hoogeboom et al., 2021, Section 6.2), declared: presets, the U-Net's
arguments, build, and the card (colour-coded samples with the Cityscapes category colours). The run is
[`hf_multinomial.training.run.train`].

    from hf_multinomial.training import run, segmentation_diffusion as task
    results = run.train(task.TASK, run.parse_arguments(task.TASK, ["--preset", "small", "--max_train_time_s", "180"]))
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List

from ..data import CITYSCAPES_CATEGORY_COLORS
from ..data.arguments import MapDataArguments, load_map_data
from ..models.unet_segmentation import SegmentationUNet
from ..pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline
from ..schedulers import MultinomialScheduler
from .diffusion import DiffusionFamily
from .model_card import card_results, diffusion_bound, save_sample_grid, training_model_card
from .run import Task

NUM_CATEGORIES = len(CITYSCAPES_CATEGORY_COLORS)
_SMALL = dict(
    height=32, width=64, num_train_timesteps=100,
    base_channels=32, channel_multipliers=(1, 2, 2), num_res_blocks=1, attention_resolutions=(4,), dropout=0.0,
    train_batch_size=32, learning_rate=2e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=20, max_grad_norm=1.0,
    num_train_epochs=100, checkpointing_steps=500, aux_loss_weight=1.0,
)

# The paper's Cityscapes setting (T = 4000, batch 64, lr 1e-4 with warm-up, dropout 0.1) and small ones.
PRESETS: Dict[str, Dict[str, Any]] = {
    "cityscapes": dict(
        height=32, width=64, num_train_timesteps=4000,
        base_channels=64, channel_multipliers=(1, 2, 4, 8), num_res_blocks=2, attention_resolutions=(4,), dropout=0.1,
        train_batch_size=64, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=500, max_grad_norm=1.0,
        num_train_epochs=500, checkpointing_steps=5000, aux_loss_weight=0.0,
    ),
    # Learns the synthetic maps in minutes on a 2-core CPU.
    "small": _SMALL,
    # `hf-multinomial demo --task segmentation`: the small model for a time budget alone, with no checkpoints.
    "demo": dict(_SMALL, num_train_epochs=None, max_train_time_s=240.0, checkpointing_steps=None),
    # For tests.
    "tiny": dict(
        height=16, width=32, num_train_timesteps=10,
        base_channels=16, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(), dropout=0.0,
        train_batch_size=8, learning_rate=3e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=20, aux_loss_weight=0.0,
    ),
}


@dataclass
class SegmentationDiffusionArguments:
    """The denoiser ([`SegmentationUNet`]) and the diffusion."""

    base_channels: int = 32
    channel_multipliers: List[int] = field(default_factory=lambda: [1, 2, 2], metadata={"help": "e.g. 1 2 4 8"})
    num_res_blocks: int = 1
    attention_resolutions: List[int] = field(default_factory=lambda: [4], metadata={
        "help": "Downsampling factors with self-attention, e.g. 4."})
    dropout: float = 0.0
    num_train_timesteps: int = field(default=100, metadata={"help": "T (the paper: 4000)."})
    aux_loss_weight: float = field(default=0.0, metadata={
        "help": "Weight of the auxiliary loss -log p(x_0 | x_t) (scheduler.jump_to_start_nll; 0 = the pure ELBO)."})

    def __post_init__(self):
        if self.aux_loss_weight < 0:
            raise ValueError(f"aux_loss_weight must be >= 0, got {self.aux_loss_weight}")


CARD_HYPERPARAMETERS = ("preset", "height", "width", "num_train_timesteps", "base_channels", "channel_multipliers",
                        "num_res_blocks", "attention_resolutions", "dropout", "train_batch_size",
                        "gradient_accumulation_steps", "learning_rate", "lr_decay_per_epoch", "lr_warmup_steps",
                        "max_grad_norm", "aux_loss_weight", "mixed_precision", "use_ema", "ema_decay", "seed")


def load_data(arguments):
    return load_map_data(arguments.data, seed=arguments.training.seed), None


def build(arguments, _) -> DiscreteDiffusionPipeline:
    model = arguments.model
    denoiser = SegmentationUNet(
        num_classes=NUM_CATEGORIES, sample_size=(arguments.data.height, arguments.data.width),
        num_train_timesteps=model.num_train_timesteps, base_channels=model.base_channels,
        channel_multipliers=tuple(model.channel_multipliers), num_res_blocks=model.num_res_blocks,
        attention_resolutions=tuple(model.attention_resolutions), dropout=model.dropout,
    )
    scheduler = MultinomialScheduler(num_classes=NUM_CATEGORIES, num_train_timesteps=model.num_train_timesteps)
    return DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=scheduler, palette=CITYSCAPES_CATEGORY_COLORS)


def card(arguments, results: Dict[str, Any], samples):
    """Save the samples as `samples.png` and fill `model_cards/segmentation_diffusion.md`, with the one-t validation
    estimate in its `model-index`."""
    data = arguments.data
    bound = diffusion_bound(arguments.model.num_train_timesteps, estimate=True)
    eval_results = card_results(results, "bpp", data, [
        ("validation_bpp_estimate", "validation", bound, "num_validation_examples")])
    return training_model_card(
        "segmentation_diffusion", arguments, results, hyperparameter_keys=CARD_HYPERPARAMETERS,
        card_data_kwargs=dict(
            datasets=data.card_datasets(),
            tags=["multinomial-diffusion", "discrete-diffusion", "segmentation-maps", "hf-multinomial"],
        ),
        eval_results=eval_results,
        data_description=data.description(),
        sample_image=save_sample_grid(arguments.output_dir, samples, CITYSCAPES_CATEGORY_COLORS),
    )


TASK = Task(
    name="segmentation_diffusion",
    script="train_segmentation_diffusion.py",
    description="Train a multinomial diffusion model on segmentation maps (run with `accelerate launch`).",
    model_arguments=SegmentationDiffusionArguments,
    data_arguments=MapDataArguments,
    presets=PRESETS,
    default_preset="small",
    default_output_dir="segmentation-diffusion-model",
    unit="pixel",
    family=DiffusionFamily(card_output_type="np"),
    load_data=load_data,
    build=build,
    card=card,
)
