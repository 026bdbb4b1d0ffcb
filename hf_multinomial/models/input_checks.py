# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Input validation shared by the denoisers: class-index samples and their timesteps."""

import torch


def check_class_indices(sample, num_classes: int, dims: str) -> None:
    """Raise a ValueError naming the problem unless `sample` is an integer tensor of shape `dims` with ids in [0, K)."""
    ndim = len(dims.split(","))
    if not isinstance(sample, torch.Tensor) or sample.ndim != ndim:
        shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
        raise ValueError(f"sample must be a {ndim}-D tensor of class indices ({dims}), got {shape}")
    if sample.dtype.is_floating_point or sample.dtype.is_complex or sample.dtype == torch.bool:
        raise ValueError(f"sample must have an integer dtype, got {sample.dtype}")
    if sample.numel() > 0:
        low, high = int(sample.min()), int(sample.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(f"sample contains class id {bad} outside [0, {num_classes})")


def batch_timesteps(timestep, sample: torch.Tensor) -> torch.Tensor:
    """`timestep` (a number, 0-dim or `(B,)` tensor) as a `(B,)` tensor on `sample`'s device."""
    batch_size = sample.shape[0]
    if not isinstance(timestep, torch.Tensor):
        timestep = torch.tensor(timestep, device=sample.device)
    if timestep.ndim == 0:
        timestep = timestep.expand(batch_size)
    if timestep.ndim != 1 or timestep.shape[0] != batch_size:
        raise ValueError(f"timestep must be a scalar or have shape ({batch_size},), got shape {tuple(timestep.shape)}")
    return timestep.to(sample.device)
