# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows on text (Hoogeboom et al., 2021, Section 6.1 and Tables 6, 7), declared: presets, model arguments,
build and card. The run is [`hf_multinomial.training.run.train`].

    from hf_multinomial.training import run, argmax_flow
    results = run.train(argmax_flow.TASK, run.parse_arguments(argmax_flow.TASK, ["--preset", "small_coupling"]))
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

from ..data import CharVocabulary
from ..data.arguments import TextDataArguments, load_text_data
from ..flows.configuration_argmax_flow import FLOW_TYPES, INVERSES, ArgmaxFlowConfig
from ..flows.modeling_argmax_flow import ArgmaxFlowModel
from .flows import FlowFamily, FlowModel
from .model_card import card_results, flow_bound, training_model_card
from .run import Task

_PAPER_AR = dict(
    flow_type="autoregressive", inverse="thresholding", cartesian_base=2, hidden_size=2048, num_layers=2,
    num_flow_steps=1, num_mixtures=27, context_size=512, context_layers=1, input_dropout=0.25,
    train_batch_size=64, optimizer="adam", learning_rate=1e-3, lr_decay_per_epoch=0.995, lr_warmup_steps=0,
    max_grad_norm=None, num_train_epochs=40, checkpointing_steps=5000,
)
_PAPER_COUPLING = dict(
    flow_type="coupling", inverse="thresholding", cartesian_base=2, hidden_size=512, num_layers=2,
    num_flow_steps=8, num_mixtures=27, context_size=512, context_layers=1, input_dropout=0.05,
    train_batch_size=16, optimizer="adamax", learning_rate=1e-3, lr_decay_per_epoch=0.995, lr_warmup_steps=0,
    max_grad_norm=None, num_train_epochs=40, checkpointing_steps=5000,
)

# The paper's models (Tables 6 and 7) and small ones for a 2-core CPU. Every key can be overridden by its flag.
PRESETS: Dict[str, Dict[str, Any]] = {
    "text8_ar": dict(_PAPER_AR, vocabulary="text8", seq_len=256),
    "enwik8_ar": dict(_PAPER_AR, vocabulary="bytes", seq_len=320),
    "text8_coupling": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=256),
    "enwik8_coupling": dict(_PAPER_COUPLING, vocabulary="bytes", seq_len=320, hidden_size=768, input_dropout=0.1,
                            train_batch_size=32, num_train_epochs=20),
    "small_ar": dict(_PAPER_AR, vocabulary="text8", seq_len=64, hidden_size=256, num_layers=1, context_size=64,
                     input_dropout=0.0, train_batch_size=32, lr_warmup_steps=20, max_grad_norm=1.0,
                     num_train_epochs=3, checkpointing_steps=250),
    # 4-minute trials on the bundled text picked these over 27 logistics, context 64, lr 1e-3, base 3 and 8 steps of
    # width 64 (validation bpc 4.11 against 4.23-4.46); coupling flows learn far more slowly than the AR flow.
    "small_coupling": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=64, hidden_size=128, num_layers=1,
                           num_flow_steps=4, num_mixtures=8, context_size=128, input_dropout=0.0,
                           train_batch_size=32, learning_rate=3e-3, lr_warmup_steps=20, max_grad_norm=1.0,
                           num_train_epochs=3, checkpointing_steps=250),
    # For tests: a second per few dozen steps.
    "tiny": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=16, hidden_size=16, num_layers=1, num_flow_steps=2,
                 num_mixtures=4, context_size=8, input_dropout=0.0, train_batch_size=8, max_grad_norm=1.0,
                 num_train_epochs=1, checkpointing_steps=20),
}


@dataclass
class ArgmaxFlowArguments:
    """The flow ([`ArgmaxFlowConfig`])."""

    flow_type: str = field(default="coupling", metadata={"choices": FLOW_TYPES})
    inverse: str = field(default="thresholding", metadata={
        "choices": INVERSES, "help": "q(v | x): the argmax inverses, or the dequantization baselines of Table 2."})
    cartesian_base: Optional[int] = field(default=2, metadata={
        "help": "Encode each class as digits in this base (2: binary, one value per bit); 0: one digit."})
    hidden_size: int = 512
    num_layers: int = 2
    num_flow_steps: int = 8
    num_mixtures: int = 27
    context_size: int = 512
    context_layers: int = 1
    input_dropout: float = 0.0

    def __post_init__(self):
        if self.cartesian_base == 0:  # the documented spelling of "no Cartesian encoding" on the command line
            self.cartesian_base = None


CARD_HYPERPARAMETERS = ("preset", "seq_len", "flow_type", "inverse", "cartesian_base", "hidden_size", "num_layers",
                        "num_flow_steps", "num_mixtures", "context_size", "context_layers", "input_dropout",
                        "train_batch_size", "gradient_accumulation_steps", "optimizer", "learning_rate",
                        "lr_decay_per_epoch", "lr_warmup_steps", "max_grad_norm", "seed")


def build(arguments, vocabulary: CharVocabulary) -> FlowModel:
    config = ArgmaxFlowConfig(num_classes=len(vocabulary), seq_len=arguments.data.seq_len, **asdict(arguments.model))
    return FlowModel(ArgmaxFlowModel(config), vocabulary)


def card(arguments, results: Dict[str, Any], samples):
    """The model card from `model_cards/argmax_flow.md`, with the validation ELBO in its `model-index`
    (`hf-multinomial bpc` adds held-out results, e.g. the IWBO, to the saved card)."""
    data = arguments.data
    eval_results = card_results(results, "bpc", data, [
        ("validation_bpc", "validation", flow_bound(1), "num_validation_examples")])
    return training_model_card(
        "argmax_flow", arguments, results, hyperparameter_keys=CARD_HYPERPARAMETERS,
        card_data_kwargs=dict(
            library_name="transformers",  # loaded with AutoModel (registered on import, or through auto_map)
            datasets=data.card_datasets(),
            language=["en"] if data.vocabulary == "text8" else None,
            tags=["argmax-flow", "normalizing-flow", "text-generation", "character-level", "hf-multinomial"],
            pipeline_tag="text-generation",
        ),
        eval_results=eval_results,
        remote_code=False,  # main holds auto_map and the modeling files already
        data_description=data.description(),
        samples=list(samples),
        byte_level=data.vocabulary == "bytes",
        on_hub=arguments.output.push_to_hub,
    )


TASK = Task(
    name="argmax_flow",
    script="train_argmax_flow.py",
    description="Train an argmax flow on text (run with `accelerate launch`).",
    model_arguments=ArgmaxFlowArguments,
    data_arguments=TextDataArguments,
    presets=PRESETS,
    default_preset="small_coupling",
    default_output_dir="argmax-flow-model",
    unit="character",
    family=FlowFamily(),
    load_data=lambda arguments: load_text_data(arguments.data),
    build=build,
    card=card,
)
