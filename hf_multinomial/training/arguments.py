# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Command-line flags, presets and the loop config shared by every training script, and the launch command that
model cards show (the cards themselves are built in `model_card.py`)."""

import argparse
import shlex
import sys

from .hub import add_hub_arguments
from .trainer import TrainingConfig


def add_training_arguments(p: argparse.ArgumentParser, default_output_dir: str, units: str = "examples") -> None:
    """Add the generic "training", "after training" and "Hugging Face Hub" flag groups to `p`."""
    train = p.add_argument_group("training")
    train.add_argument("--output_dir", default=default_output_dir)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--train_batch_size", type=int, default=None, help="Per process and micro-batch.")
    train.add_argument("--learning_rate", type=float, default=None)
    train.add_argument("--optimizer", choices=["adam", "adamax"], default=None, help="Default: the preset's.")
    train.add_argument("--lr_decay_per_epoch", type=float, default=None)
    train.add_argument("--lr_warmup_steps", type=int, default=None)
    train.add_argument("--adam_weight_decay", type=float, default=0.0)
    train.add_argument("--max_train_steps", type=int, default=None, help="Optimizer steps; overrides epochs.")
    train.add_argument("--num_train_epochs", type=int, default=None)
    train.add_argument("--max_train_time_s", type=float, default=None, help="Wall-clock budget of the loop.")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--max_grad_norm", type=float, default=None, help="Clip gradients (0 or unset: preset).")
    train.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default="no")
    train.add_argument("--gradient_checkpointing", action="store_true",
                       help="Recompute activations in the backward pass: far less memory for about 10%% more time.")
    train.add_argument("--use_ema", action="store_true")
    train.add_argument("--ema_decay", type=float, default=0.9999)
    train.add_argument("--checkpointing_steps", type=int, default=None)
    train.add_argument("--checkpoints_total_limit", type=int, default=None)
    train.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder.')
    train.add_argument("--report_to", default="tensorboard", help='"tensorboard" or "none".')
    train.add_argument("--logging_steps", type=int, default=1)

    final = p.add_argument_group("after training")
    final.add_argument("--num_validation_sequences", type=int, default=64,
                       help=f"Validation {units} for the one-t estimate written to the model card (0: skip).")
    final.add_argument("--num_card_samples", type=int, default=2, help="Samples printed in the model card (0: none).")
    final.add_argument("--card_inference_steps", type=int, default=100, help="Sampling steps for them (at most T).")
    add_hub_arguments(p)


def training_config(args: argparse.Namespace, project_name: str) -> TrainingConfig:
    """The [`TrainingConfig`] for the flags in `args` (unset ones keep the dataclass defaults)."""
    names = TrainingConfig.__dataclass_fields__
    config = TrainingConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    config.max_grad_norm = args.max_grad_norm
    config.tracker_project_name = project_name
    return config


def apply_preset(args: argparse.Namespace, preset: dict) -> argparse.Namespace:
    """Give every flag left unset (None) the preset's value; `--max_grad_norm 0` means no clipping."""
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.max_grad_norm == 0:
        args.max_grad_norm = None
    return args


SECRET_FLAGS = ("--hub_token",)


def parse_script_args(parser: argparse.ArgumentParser, script: str, argv, resolve) -> argparse.Namespace:
    """Parse `argv` (`sys.argv[1:]` when None) with `parser`, remember the command line for the model card (as
    `script` plus the flags), and return `resolve(args)` (the preset and checks of the task)."""
    args = parser.parse_args(argv)
    args.command_line = [script, *(sys.argv[1:] if argv is None else argv)]
    return resolve(args)


def launch_command(args: argparse.Namespace):
    """The `accelerate launch` command that reproduces the run, for model cards (None when not parsed from argv);
    the values of `SECRET_FLAGS` (the Hub token) are replaced by `***`."""
    command_line = list(getattr(args, "command_line", None) or [])
    for i, arg in enumerate(command_line):
        if arg in SECRET_FLAGS and i + 1 < len(command_line):
            command_line[i + 1] = "***"
        elif arg.split("=", 1)[0] in SECRET_FLAGS and "=" in arg:
            command_line[i] = arg.split("=", 1)[0] + "=***"
    return "accelerate launch " + " ".join(shlex.quote(a) for a in command_line) if command_line else None

