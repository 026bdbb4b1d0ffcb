# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The Gaussian densities of the flows: the standard normal base of every density flow, the split priors of the
multi-scale flow and the conditional Gaussians of q(v | x)."""

import math
from typing import Optional, Tuple

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(
    x: torch.Tensor, mean: Optional[torch.Tensor] = None, log_scale: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """log N(x; mean, exp(log_scale)^2) elementwise (broadcasting); `mean` 0 and `log_scale` 0 when not given."""
    if mean is not None:
        x = x - mean
    if log_scale is None:
        return -0.5 * (x**2 + LOG_2PI)
    return -0.5 * ((x * torch.exp(-log_scale)) ** 2 + LOG_2PI) - log_scale


def sample_gaussian(
    mean: torch.Tensor, log_scale: torch.Tensor, generator: Optional[torch.Generator] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(mean, exp(log_scale)^2) elementwise, reparametrized, and its log density from the noise (exact where
    evaluating the density at the rounded x would not be)."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(log_scale) * eps, gaussian_log_prob(eps) - log_scale
