"""Training: the one accelerate loop (`trainer`), the one run around it (`run`), and the tasks that declare what they
train (`text_diffusion`, `segmentation_diffusion`, `argmax_flow`, `segmentation_flow`)."""

from .arguments import Arguments, OutputArguments, parse_arguments
from .run import Task, train
from .trainer import (
    EpochBatchSampler,
    TrainingConfig,
    TrainingResult,
    list_checkpoints,
    load_checkpoint,
    make_accelerator,
    resolve_checkpoint,
    save_checkpoint,
    train_loop,
    verify_checkpoint,
)

__all__ = [
    "Arguments",
    "EpochBatchSampler",
    "OutputArguments",
    "Task",
    "TrainingConfig",
    "TrainingResult",
    "list_checkpoints",
    "load_checkpoint",
    "make_accelerator",
    "parse_arguments",
    "resolve_checkpoint",
    "save_checkpoint",
    "train",
    "train_loop",
    "verify_checkpoint",
]
