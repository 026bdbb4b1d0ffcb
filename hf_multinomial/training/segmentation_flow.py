# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows, dequantization baselines and a VAE on segmentation maps (Hoogeboom et al., 2021, Section 6.2 and
Appendix B.2): presets, data, the model, the held-out evaluation (ELBO and IWBO) and the model card. The run is
[`hf_multinomial.training.flows.train_flow`] on the shared loop.

    from hf_multinomial.training.segmentation_flow import parse_args, train
    result = train(parse_args(["--preset", "small", "--model", "thresholding", "--output_dir", "out",
                               "--max_train_time_s", "180"]))
"""

import argparse
import json
import os
from typing import Any, Dict, List, Optional

import torch
from accelerate.utils import set_seed

from ..data import CITYSCAPES_CATEGORY_COLORS
from ..evaluation import bits_per_unit, flow_negative_log_likelihood
from ..flows.configuration_segmentation_flow import SEGMENTATION_MODELS, SegmentationFlowConfig
from ..flows.modeling_segmentation_flow import SegmentationFlowModel
from .arguments import add_training_arguments, apply_preset, parse_script_args, training_config
from .flows import flow_bound, train_flow
from .model_card import bits_eval_result, training_model_card
from .segmentation_diffusion import card_samples_and_dataset, load_data
from .trainer import make_accelerator

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

MODEL_KEYS = ("model", "cartesian_base", "num_levels", "num_steps", "factor_out", "encoder_steps", "context_channels",
              "latent_channels", "mid_channels", "depth", "growth", "num_blocks", "dropout")
NUM_CATEGORIES = len(CITYSCAPES_CATEGORY_COLORS)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train an argmax flow, a dequantization baseline or a VAE on segmentation maps "
                    "(run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="cityscapes (the paper), small (CPU), tiny (tests). Unset flags take the preset's value.")
    data = p.add_argument_group("data (default: synthetic street-scene maps)")
    data.add_argument("--data_root", default=None,
                      help="Cityscapes: gtFine_trainvaltest.zip, its unpacked gtFine/ folder, or a folder holding "
                           "either.")
    data.add_argument("--num_synthetic_maps", type=int, default=2000, help="Training maps when no --data_root.")
    data.add_argument("--cache_dir", default=None)
    data.add_argument("--height", type=int, default=None)
    data.add_argument("--width", type=int, default=None)
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = p.add_argument_group("model")
    model.add_argument("--model", choices=SEGMENTATION_MODELS, default="thresholding",
                       help="The row of the paper's Table 3: dequantization baselines, argmax flows, or the VAE.")
    model.add_argument("--cartesian_base", type=int, default=None,
                       help="Encode each class as digits in this base (2: one value per bit); default: one digit.")
    model.add_argument("--num_levels", type=int, default=None, help="Levels of p(v), each a squeeze and subflows.")
    model.add_argument("--num_steps", type=int, default=None, help="Subflows per level of p(v).")
    model.add_argument("--factor_out", type=_bool, default=None, help="Multi-scale: factor out half after each level.")
    model.add_argument("--encoder_steps", type=int, default=None, help="Subflows of q(v | x).")
    model.add_argument("--context_channels", type=int, default=None)
    model.add_argument("--latent_channels", type=int, default=None, help="The VAE's z channels.")
    model.add_argument("--mid_channels", type=int, default=None, help="Width of every DenseNet.")
    model.add_argument("--depth", type=int, default=None, help="Convolutions per dense block.")
    model.add_argument("--growth", type=int, default=None, help="Channels added by each of them.")
    model.add_argument("--num_blocks", type=int, default=None, help="Dense blocks per DenseNet.")
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument("--lr_warmup_epochs", type=float, default=None,
                       help="Linear warm-up over this many epochs (the paper: 10). A warm-up set on the command "
                            "line, in steps or epochs, replaces the preset's.")
    add_training_arguments(p, default_output_dir="segmentation-flow-model", units="maps")
    evaluation = p.add_argument_group("held-out evaluation (after training)")
    evaluation.add_argument("--num_eval_maps", type=int, default=48,
                            help="Test maps for the ELBO and IWBO in the results and model card (0: skip); the "
                                 "segmentation demo of the diffusion model uses 48.")
    evaluation.add_argument("--num_iwbo_samples", type=int, default=100, help="k of the IWBO (the paper: 1000).")
    evaluation.add_argument("--eval_rows", type=int, default=256, help="Maps x samples per forward pass.")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (`sys.argv[1:]` by default) and fill the unset ones from the preset."""
    return parse_script_args(build_arg_parser(), "train_segmentation_flow.py", argv, resolve_preset)


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    preset = dict(PRESETS[args.preset])
    # A warm-up given on the command line, in steps or epochs, replaces the preset's in either unit.
    if args.lr_warmup_steps is not None:
        preset.pop("lr_warmup_epochs", None)
    if args.lr_warmup_epochs is not None:
        preset.pop("lr_warmup_steps", None)
    apply_preset(args, preset)
    if args.cartesian_base == 0:
        args.cartesian_base = None
    return args


def build_model(args: argparse.Namespace) -> SegmentationFlowModel:
    config = SegmentationFlowConfig(num_classes=NUM_CATEGORIES, height=args.height, width=args.width,
                                    **{key: getattr(args, key) for key in MODEL_KEYS})
    return SegmentationFlowModel(config)


def evaluate(model: SegmentationFlowModel, dataset, num_maps: int, num_samples: int, eval_rows: int = 256,
             seed: int = 0) -> Dict[str, Any]:
    """
    Bits per pixel of the first `num_maps` maps of `dataset`: the ELBO (one draw per map) and the IWBO with
    `num_samples` draws per map, through the shared bits-per-unit metric.
    """
    input_ids = dataset[: min(num_maps, len(dataset))]["input_ids"]
    pixels = input_ids[0].numel()
    device = next(model.parameters()).device
    results = {"eval_maps": int(input_ids.shape[0]), "iwbo_samples": num_samples}
    for name, k in (("elbo", 1), ("iwbo", num_samples)):
        generator = torch.Generator(device=device).manual_seed(seed)
        nll = flow_negative_log_likelihood(model, input_ids, batch_size=max(1, eval_rows // k), num_samples=k,
                                           generator=generator)
        results[f"test_bpp_{name}"] = bits_per_unit(nll, pixels, "pixel")["bpp"]
    return results


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """
    Train with `args` (from [`parse_args`]) and, on the main process, save the model with `save_pretrained` to
    `args.output_dir`, evaluate the ELBO and IWBO on `args.num_eval_maps` test maps, and write `samples.png`, the
    model card `README.md` and `train_results.json`.

    Returns the results dict (on every process; the held-out figures `test_bpp_elbo` and `test_bpp_iwbo` on the main
    process): global_step, train_time_s, the training bound (bpp, mean of the last 10% of steps), validation_bpp
    (ELBO), history.
    """
    args = resolve_preset(args)
    config = training_config(args, "segmentation_flow")
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        data = load_data(args)
    if args.lr_warmup_epochs is not None:
        steps_per_epoch = len(data["train"]) // (args.train_batch_size * accelerator.num_processes
                                                 * args.gradient_accumulation_steps)
        args.lr_warmup_steps = config.lr_warmup_steps = int(round(args.lr_warmup_epochs * steps_per_epoch))
    set_seed(args.seed)  # identical initial weights on every process
    model = build_model(args)

    def evaluate_and_write_card(args, stats, samples):
        # Called on the main process after `model` (trained in place) was saved.
        if args.num_eval_maps > 0 and len(data["test"]):
            stats.update(evaluate(model.eval(), data["test"], args.num_eval_maps, args.num_iwbo_samples,
                                  args.eval_rows, seed=args.seed))
            with open(os.path.join(args.output_dir, "train_results.json"), "w") as f:
                json.dump({k: v for k, v in stats.items() if k != "history"}, f, indent=2)
        return write_model_card(args, stats, samples)

    return train_flow(args, config, accelerator, data, model, unit="pixel", write_model_card=evaluate_and_write_card,
                      decode_samples=lambda maps: maps)


def write_model_card(args: argparse.Namespace, stats: Dict[str, Any], samples) -> str:
    """Save the samples as `samples.png` and fill `model_cards/segmentation_flow.md` into `README.md`, with the
    validation ELBO and the test ELBO and IWBO in its `model-index`."""
    sample_image, dataset_type, dataset_name = card_samples_and_dataset(args, samples)
    results = []
    for key, split, k, count in (
        ("validation_bpp", "validation", 1, stats.get("num_validation_examples")),
        ("test_bpp_elbo", "test", 1, stats.get("eval_maps")),
        ("test_bpp_iwbo", "test", stats.get("iwbo_samples"), stats.get("eval_maps")),
    ):
        if stats.get(key) is not None:
            results.append(bits_eval_result(stats[key], "bpp", flow_bound(k), dataset_type=dataset_type,
                                            dataset_name=dataset_name, dataset_split=split, num_examples=count))
    card = training_model_card(
        "segmentation_flow", args, stats,
        hyperparameter_keys=("preset", "height", "width", *MODEL_KEYS, "train_batch_size",
                             "gradient_accumulation_steps", "optimizer", "learning_rate", "lr_warmup_steps",
                             "lr_decay_per_epoch", "max_grad_norm", "seed"),
        card_data_kwargs=dict(
            library_name="transformers",  # loaded with AutoModel (registered on import, or through auto_map)
            datasets=["cityscapes"] if args.data_root else None,
            tags=["argmax-flow", "normalizing-flow", "segmentation-maps", "hf-multinomial"],
        ),
        eval_results=results,
        remote_code=False,  # the saved folder holds auto_map and the modeling files
        data_description=dataset_name,
        sample_image=sample_image,
    )
    path = os.path.join(args.output_dir, "README.md")
    card.save(path)
    return path
