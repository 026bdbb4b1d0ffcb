# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Multinomial diffusion on segmentation maps (Hoogeboom et al., 2021, Section 6.2): presets, data, the U-Net, and the
final pipeline (colour-coded with the Cityscapes category colours) and model card. The run is
[`hf_multinomial.training.diffusion.train_diffusion`], shared with the text task.

    from hf_multinomial.training.segmentation_diffusion import parse_args, train
    result = train(parse_args(["--preset", "small", "--output_dir", "out", "--max_train_time_s", "180"]))
"""

import argparse
import os
from typing import Any, Dict, List, Optional

from accelerate.utils import set_seed

from ..data import CITYSCAPES_CATEGORY_COLORS, load_cityscapes, synthetic_segmentation_dataset
from ..models.unet_segmentation import SegmentationUNet
from ..pipelines.image_utils import make_grid
from ..pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline
from ..schedulers import MultinomialScheduler
from .arguments import add_training_arguments, apply_preset, parse_script_args, training_config
from .diffusion import train_diffusion
from .model_card import bits_eval_result, diffusion_bound, training_model_card
from .trainer import make_accelerator

# The paper's Cityscapes setting (T = 4000, batch 64, lr 1e-4 with warm-up, dropout 0.1) and two small ones.
PRESETS: Dict[str, Dict[str, Any]] = {
    "cityscapes": dict(
        height=32, width=64, num_train_timesteps=4000,
        base_channels=64, channel_multipliers=(1, 2, 4, 8), num_res_blocks=2, attention_resolutions=(4,), dropout=0.1,
        train_batch_size=64, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=500, max_grad_norm=1.0,
        num_train_epochs=500, checkpointing_steps=5000, aux_loss_weight=0.0,
    ),
    # Learns the synthetic maps in minutes on a 2-core CPU (the segmentation demo).
    "small": dict(
        height=32, width=64, num_train_timesteps=100,
        base_channels=32, channel_multipliers=(1, 2, 2), num_res_blocks=1, attention_resolutions=(4,), dropout=0.0,
        train_batch_size=32, learning_rate=2e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=20, max_grad_norm=1.0,
        num_train_epochs=100, checkpointing_steps=500, aux_loss_weight=1.0,
    ),
    # For tests.
    "tiny": dict(
        height=16, width=32, num_train_timesteps=10,
        base_channels=16, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(), dropout=0.0,
        train_batch_size=8, learning_rate=3e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=20, aux_loss_weight=0.0,
    ),
}

MODEL_KEYS = ("base_channels", "channel_multipliers", "num_res_blocks", "attention_resolutions", "dropout")
NUM_CATEGORIES = len(CITYSCAPES_CATEGORY_COLORS)


def _int_tuple(text: str):
    return tuple(int(v) for v in text.split(",") if v.strip())


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a multinomial diffusion model on segmentation maps (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="cityscapes (the paper), small (2-core CPU), tiny (tests). Unset flags take the preset's value.")
    data = p.add_argument_group("data (default: synthetic street-scene maps)")
    data.add_argument("--data_root", default=None,
                      help="Cityscapes: gtFine_trainvaltest.zip, its unpacked gtFine/ folder, or a folder holding either.")
    data.add_argument("--num_synthetic_maps", type=int, default=2000, help="Training maps when no --data_root.")
    data.add_argument("--cache_dir", default=None)
    data.add_argument("--height", type=int, default=None)
    data.add_argument("--width", type=int, default=None)
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = p.add_argument_group("model and diffusion")
    model.add_argument("--base_channels", type=int, default=None)
    model.add_argument("--channel_multipliers", type=_int_tuple, default=None, help="e.g. 1,2,4,8")
    model.add_argument("--num_res_blocks", type=int, default=None)
    model.add_argument("--attention_resolutions", type=_int_tuple, default=None, help="downsampling factors, e.g. 4")
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument("--num_train_timesteps", type=int, default=None, help="T (the paper: 4000).")
    model.add_argument("--aux_loss_weight", type=float, default=None,
                       help="Weight of the auxiliary loss -log p(x_0 | x_t) (scheduler.jump_to_start_nll; 0 = the pure ELBO).")
    add_training_arguments(p, default_output_dir="segmentation-diffusion-model", units="maps")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (`sys.argv[1:]` by default) and fill the unset ones from the preset."""
    return parse_script_args(build_arg_parser(), "train_segmentation_diffusion.py", argv, resolve_preset)


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    return apply_preset(args, PRESETS[args.preset])


def load_data(args: argparse.Namespace):
    """A DatasetDict with `input_ids` maps of shape (height, width): Cityscapes with --data_root, else synthetic."""
    size = (args.height, args.width)
    if args.data_root:
        data = load_cityscapes(args.data_root, size=size, cache_dir=args.cache_dir)
    else:
        data = synthetic_segmentation_dataset(num_train=args.num_synthetic_maps, height=size[0], width=size[1], seed=args.seed)
    return data.select_columns(["input_ids"]).with_format("torch")


def build_model(args: argparse.Namespace) -> SegmentationUNet:
    return SegmentationUNet(
        num_classes=NUM_CATEGORIES, sample_size=(args.height, args.width), num_train_timesteps=args.num_train_timesteps,
        **{key: getattr(args, key) for key in MODEL_KEYS},
    )


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """Train with `args` (from [`parse_args`]); see [`train_diffusion`] for what is written and returned."""
    args = resolve_preset(args)
    config = training_config(args, "segmentation_diffusion")
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        data = load_data(args)
    set_seed(args.seed)  # identical initial weights on every process
    scheduler = MultinomialScheduler(num_classes=NUM_CATEGORIES, num_train_timesteps=args.num_train_timesteps)
    pipeline = DiscreteDiffusionPipeline(denoiser=build_model(args), scheduler=scheduler, palette=CITYSCAPES_CATEGORY_COLORS)
    return train_diffusion(args, config, accelerator, data, pipeline, unit="pixel", write_model_card=write_model_card,
                           card_output_type="np")


def card_samples_and_dataset(args: argparse.Namespace, samples):
    """Save the card's samples (class-id maps) as a colour-coded `samples.png` grid in `args.output_dir`; returns
    `(image file name or None, dataset id, dataset name)` for the segmentation model cards."""
    sample_image = None
    if len(samples):
        sample_image = "samples.png"
        make_grid(samples, palette=CITYSCAPES_CATEGORY_COLORS, scale=2).save(os.path.join(args.output_dir, sample_image))
    if args.data_root:
        return sample_image, "cityscapes", "Cityscapes (8 categories)"
    return sample_image, "hf-multinomial/synthetic-street-maps", "synthetic street-scene maps"


def write_model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: list) -> str:
    """Save the samples as `samples.png` and fill `model_cards/segmentation_diffusion.md` into `README.md`, with the
    one-t validation estimate in its `model-index`."""
    sample_image, dataset_type, dataset_name = card_samples_and_dataset(args, samples)
    results = []
    if stats.get("validation_bpp_estimate") is not None:
        results.append(bits_eval_result(
            stats["validation_bpp_estimate"], "bpp", diffusion_bound(args.num_train_timesteps, estimate=True),
            dataset_type=dataset_type, dataset_name=dataset_name, dataset_split="validation",
            num_examples=stats.get("num_validation_examples"),
        ))
    card = training_model_card(
        "segmentation_diffusion", args, stats,
        hyperparameter_keys=("preset", "height", "width", "num_train_timesteps", *MODEL_KEYS, "train_batch_size",
                             "gradient_accumulation_steps", "learning_rate", "lr_decay_per_epoch", "lr_warmup_steps",
                             "max_grad_norm", "aux_loss_weight", "mixed_precision", "use_ema", "ema_decay", "seed"),
        card_data_kwargs=dict(
            datasets=["cityscapes"] if args.data_root else None,
            tags=["multinomial-diffusion", "discrete-diffusion", "segmentation-maps", "hf-multinomial"],
        ),
        eval_results=results,
        data_description=dataset_name,
        sample_image=sample_image,
    )
    path = os.path.join(args.output_dir, "README.md")
    card.save(path)
    return path
