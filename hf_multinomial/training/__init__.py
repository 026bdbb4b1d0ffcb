"""Training: the one accelerate loop shared by every training script, and the tasks built on it."""

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
)

__all__ = [
    "EpochBatchSampler",
    "TrainingConfig",
    "TrainingResult",
    "list_checkpoints",
    "load_checkpoint",
    "make_accelerator",
    "resolve_checkpoint",
    "save_checkpoint",
    "train_loop",
]
