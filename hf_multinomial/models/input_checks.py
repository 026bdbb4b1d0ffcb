# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Input validation shared by the denoisers: config numbers, class-index samples and their timesteps."""

import math

import torch


def check_config_int(name: str, value, minimum: int = 1) -> None:
    """Raise a ValueError naming `name` unless `value` is an integer >= `minimum` (a bool or a float is refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")


def check_config_number(name: str, value, low: float, high: float = math.inf, high_open: bool = False) -> None:
    """Raise a ValueError naming `name` unless `value` is a finite real number in `[low, high]` (`[low, high)`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and low <= value
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name}={value!r} must be a finite number in [{low}, {high}{')' if high_open else ']'}")


def _check_sample_form(sample, dims: str) -> None:
    """`sample` must be a non-empty integer tensor of shape `dims` (e.g. `"batch, seq_len"`); needs no host sync."""
    ndim = len(dims.split(","))
    if not isinstance(sample, torch.Tensor) or sample.ndim != ndim:
        shape = tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__
        raise ValueError(f"sample must be a {ndim}-D tensor of class indices ({dims}), got {shape}")
    if sample.dtype.is_floating_point or sample.dtype.is_complex or sample.dtype == torch.bool:
        raise ValueError(f"sample must have an integer dtype, got {sample.dtype}")
    if sample.numel() == 0:
        raise ValueError(f"sample must not be empty ({dims}), got shape {tuple(sample.shape)}")


def _raise_bad_id(low: int, high: int, num_classes: int) -> None:
    bad = low if low < 0 else high
    raise ValueError(f"sample contains class id {bad} outside [0, {num_classes})")


def check_class_indices(sample, num_classes: int, dims: str) -> None:
    """Raise a ValueError naming the problem unless `sample` is an integer tensor of shape `dims` with ids in [0, K)."""
    _check_sample_form(sample, dims)
    low, high = torch.stack(torch.aminmax(sample)).tolist()
    if low < 0 or high >= num_classes:
        _raise_bad_id(low, high, num_classes)


def check_inputs(sample, timestep, num_classes: int, num_train_timesteps: int, dims: str) -> torch.Tensor:
    """
    Validate a denoiser's inputs and return the timesteps as a `(B,)` tensor on `sample`'s device.

    `sample` as for `check_class_indices`; `timestep` a number, a 0-dim or a `(B,)` tensor of finite (possibly
    fractional) values in `[0, num_train_timesteps)`. The checks on values take one host sync in all.
    """
    _check_sample_form(sample, dims)
    timestep = batch_timesteps(timestep, sample)
    low, high = torch.aminmax(sample)
    t_low, t_high = torch.aminmax(timestep)
    checks = torch.stack([(low >= 0) & (high < num_classes), (t_low >= 0) & (t_high < num_train_timesteps)])
    ids_ok, timesteps_ok = checks.tolist()  # the one host sync
    if not ids_ok:
        _raise_bad_id(int(low), int(high), num_classes)
    if not timesteps_ok:
        bad = timestep[~((timestep >= 0) & (timestep < num_train_timesteps))].flatten()[0].item()
        raise ValueError(
            f"timestep holds {bad}, outside [0, {num_train_timesteps}) (the denoiser's num_train_timesteps)"
        )
    return timestep


def batch_timesteps(timestep, sample: torch.Tensor) -> torch.Tensor:
    """`timestep` (a number, 0-dim or `(B,)` tensor) as a `(B,)` tensor on `sample`'s device."""
    batch_size = sample.shape[0]
    if isinstance(timestep, bool) or (isinstance(timestep, torch.Tensor) and timestep.dtype == torch.bool):
        raise ValueError(f"timestep must be a number or a tensor of numbers, got {timestep!r}")
    if not isinstance(timestep, torch.Tensor):
        if not isinstance(timestep, (int, float)):
            raise ValueError(f"timestep must be a number or a tensor of numbers, got {timestep!r}")
        timestep = torch.tensor(timestep, device=sample.device)
    if timestep.dtype.is_complex:
        raise ValueError(f"timestep must be real, got dtype {timestep.dtype}")
    if timestep.ndim == 0:
        timestep = timestep.expand(batch_size)
    if timestep.ndim != 1 or timestep.shape[0] != batch_size:
        raise ValueError(f"timestep must be a scalar or have shape ({batch_size},), got shape {tuple(timestep.shape)}")
    return timestep.to(sample.device)
