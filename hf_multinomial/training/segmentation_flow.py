# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows, dequantization baselines and a VAE on segmentation maps (Hoogeboom et al., 2021, Section 6.2 and
Appendix B.2), declared: presets, model arguments, build, the held-out evaluation (ELBO and IWBO) and the card. The
run is [`hf_multinomial.training.run.train`].

    from hf_multinomial.training import run, segmentation_flow as task
    results = run.train(task.TASK, run.parse_arguments(task.TASK, ["--preset", "small", "--inverse", "thresholding"]))
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional

from ..data import CITYSCAPES_CATEGORY_COLORS
from ..data.arguments import MapDataArguments, load_map_data
from ..flows.configuration_argmax_flow import INVERSES
from ..flows.configuration_segmentation_flow import SegmentationFlowConfig
from ..flows.modeling_segmentation_flow import SegmentationFlowModel
from .flows import FlowFamily, FlowModel
from .model_card import card_results, flow_bound, save_sample_grid, training_model_card
from .run import Task

NUM_CATEGORIES = len(CITYSCAPES_CATEGORY_COLORS)

# The paper's Cityscapes setting (Appendix B.2: 4 levels of 10 subflows, q with 8 subflows, batch 64, Adamax lr 1e-3,
# linear warm-up over 10 epochs, decay 0.995 per epoch, 2000 epochs; the DenseNet widths are not given there, these
# are ours), a small one for a CPU and a tiny one for tests.
PRESETS: Dict[str, Dict[str, Any]] = {
    "cityscapes": dict(
        height=32, width=64, num_levels=4, num_steps=10, encoder_steps=8, factor_out=True,
        mid_channels=64, depth=4, growth=32, num_blocks=1, context_channels=32, latent_channels=8, dropout=0.0,
        train_batch_size=64, optimizer="adamax", learning_rate=1e-3, lr_warmup_epochs=10, lr_decay_per_epoch=0.995,
        max_grad_norm=None, num_train_epochs=2000, checkpointing_steps=5000,
    ),
    # Learns the synthetic maps of the segmentation demo in a few minutes on one CPU thread (small batches and a high
    # learning rate: the most progress per second at this budget).
    "small": dict(
        height=32, width=64, num_levels=2, num_steps=4, encoder_steps=2, factor_out=True,
        mid_channels=24, depth=2, growth=16, num_blocks=1, context_channels=8, latent_channels=8, dropout=0.0,
        train_batch_size=8, optimizer="adamax", learning_rate=5e-3, lr_warmup_steps=20, lr_decay_per_epoch=0.995,
        max_grad_norm=1.0, num_train_epochs=20, checkpointing_steps=1000,
    ),
    # For tests.
    "tiny": dict(
        height=8, width=16, num_levels=1, num_steps=1, encoder_steps=1, factor_out=True,
        mid_channels=4, depth=1, growth=4, num_blocks=1, context_channels=2, latent_channels=2, dropout=0.0,
        train_batch_size=8, optimizer="adamax", learning_rate=1e-3, lr_warmup_steps=0, lr_decay_per_epoch=0.995,
        max_grad_norm=1.0, num_train_epochs=1, checkpointing_steps=20,
    ),
}


@dataclass
class SegmentationFlowArguments:
    """The model ([`SegmentationFlowConfig`]) and its held-out evaluation after training."""

    inverse: str = field(default="thresholding", metadata={
        "choices": INVERSES,
        "help": "q(v | x), a row of the paper's Table 3: the dequantization baselines or the argmax flows."})
    vae: bool = field(default=False, metadata={
        "help": "The VAE row of Table 3 instead (a learned decoder p(x | z); --inverse is then unused)."})
    cartesian_base: Optional[int] = field(default=None, metadata={
        "help": "Encode each class as digits in this base (2: one value per bit); default or 0: one digit."})
    num_levels: int = field(default=4, metadata={"help": "Levels of p(v), each a squeeze and subflows."})
    num_steps: int = field(default=10, metadata={"help": "Subflows per level of p(v)."})
    factor_out: bool = field(default=True, metadata={"help": "Multi-scale: factor out half after each level."})
    encoder_steps: int = field(default=8, metadata={"help": "Subflows of q(v | x)."})
    context_channels: int = 32
    latent_channels: int = field(default=8, metadata={"help": "The VAE's z channels."})
    mid_channels: int = field(default=64, metadata={"help": "Width of every DenseNet."})
    depth: int = field(default=4, metadata={"help": "Convolutions per dense block."})
    growth: int = field(default=32, metadata={"help": "Channels added by each of them."})
    num_blocks: int = field(default=1, metadata={"help": "Dense blocks per DenseNet."})
    dropout: float = 0.0
    num_eval_maps: int = field(default=48, metadata={
        "help": "Test maps for the ELBO and IWBO after training (0: skip); the segmentation demo uses 48."})
    num_iwbo_samples: int = field(default=100, metadata={"help": "k of the IWBO (the paper: 1000)."})
    eval_rows: int = field(default=256, metadata={"help": "Maps x samples per forward pass of the evaluation."})

    # Not part of the model: free to differ when a run is resumed.
    EVALUATION_FIELDS = ("num_eval_maps", "num_iwbo_samples", "eval_rows")

    def __post_init__(self):
        if self.cartesian_base == 0:  # the documented spelling of "no Cartesian encoding" on the command line
            self.cartesian_base = None
        if self.num_eval_maps < 0:
            raise ValueError(f"num_eval_maps must be >= 0, got {self.num_eval_maps}")
        for name in ("num_iwbo_samples", "eval_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")


CARD_HYPERPARAMETERS = ("preset", "height", "width", "inverse", "vae", "cartesian_base", "num_levels", "num_steps",
                        "factor_out", "encoder_steps", "context_channels", "latent_channels", "mid_channels", "depth",
                        "growth", "num_blocks", "dropout", "train_batch_size", "gradient_accumulation_steps",
                        "optimizer", "learning_rate", "lr_warmup_steps", "lr_warmup_epochs", "lr_decay_per_epoch",
                        "max_grad_norm", "seed")


def load_data(arguments):
    return load_map_data(arguments.data, seed=arguments.training.seed), None


def build(arguments, _) -> FlowModel:
    model_args = {k: v for k, v in asdict(arguments.model).items()
                  if k not in SegmentationFlowArguments.EVALUATION_FIELDS}
    config = SegmentationFlowConfig(num_classes=NUM_CATEGORIES, height=arguments.data.height,
                                    width=arguments.data.width, **model_args)
    return FlowModel(SegmentationFlowModel(config))


def evaluate(arguments, flow: FlowModel, data) -> Dict[str, Any]:
    """Bits per pixel of the first `num_eval_maps` test maps: the ELBO (one draw per map) and the IWBO with
    `num_iwbo_samples` draws per map."""
    model_args = arguments.model
    count = min(model_args.num_eval_maps, len(data["test"]))
    if count == 0:
        return {}
    input_ids = data["test"][:count]["input_ids"]
    results = {"eval_maps": count, "iwbo_samples": model_args.num_iwbo_samples}
    for name, k in (("elbo", 1), ("iwbo", model_args.num_iwbo_samples)):
        results[f"test_bpp_{name}"] = FlowFamily().validation_bits(
            flow, input_ids, "pixel", arguments.training.seed, num_samples=k,
            batch_size=max(1, model_args.eval_rows // k))
    return results


def card(arguments, results: Dict[str, Any], samples):
    """Save the samples as `samples.png` and fill `model_cards/segmentation_flow.md`, with the validation ELBO and
    the test ELBO and IWBO in its `model-index`."""
    data = arguments.data
    eval_results = card_results(results, "bpp", data, [
        ("validation_bpp", "validation", flow_bound(1), "num_validation_examples"),
        ("test_bpp_elbo", "test", flow_bound(1), "eval_maps"),
        ("test_bpp_iwbo", "test", flow_bound(results.get("iwbo_samples") or 1), "eval_maps"),
    ])
    return training_model_card(
        "segmentation_flow", arguments, results, hyperparameter_keys=CARD_HYPERPARAMETERS,
        card_data_kwargs=dict(
            library_name="transformers",  # loaded with AutoModel (registered on import, or through auto_map)
            datasets=data.card_datasets(),
            tags=["argmax-flow", "normalizing-flow", "segmentation-maps", "hf-multinomial"],
        ),
        eval_results=eval_results,
        remote_code=False,  # the saved folder holds auto_map and the modeling files
        data_description=data.description(),
        sample_image=save_sample_grid(arguments.output_dir, samples, CITYSCAPES_CATEGORY_COLORS),
    )


TASK = Task(
    name="segmentation_flow",
    script="train_segmentation_flow.py",
    description="Train an argmax flow, a dequantization baseline or a VAE on segmentation maps (run with "
                "`accelerate launch`).",
    model_arguments=SegmentationFlowArguments,
    data_arguments=MapDataArguments,
    presets=PRESETS,
    default_preset="small",
    default_output_dir="segmentation-flow-model",
    unit="pixel",
    family=FlowFamily(),
    load_data=load_data,
    build=build,
    card=card,
    evaluate=evaluate,
)
