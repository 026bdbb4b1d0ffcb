# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The quantized eight-Gaussians toy of Discrete Flows (Tran et al., 2019) and the Argmax Flows paper's Appendix C.

A mixture of 8 Gaussians with standard deviation 0.1 and means on the circle of radius 2 (angles k * 45 degrees),
clipped to [-2.25, 2.25] and quantized as round(20 x) + 45: 2 dimensions with 91 classes each.

* `sample_eight_gaussians` draws class ids (N, 2);
* `eight_gaussians_pmf` gives the exact probability mass table (91, 91) in float64: each component is a product of
  two 1-D Gaussians, so a cell's mass is a product of differences of normal CDFs; the first and last cells also hold
  the mass clipped at -2.25 and 2.25 (the whole tail beyond the cell edge -2.225 / 2.225);
* `eight_gaussians_entropy` its exact entropy, about 6.320 nats.

The heat maps of the paper's Figure 6 are drawn by `scripts/toy_eight_gaussians.py`.
"""

import math
from typing import Optional

import torch


__all__ = [
    "EIGHT_GAUSSIANS_NUM_CLASSES",
    "eight_gaussians_means",
    "quantize_eight_gaussians",
    "sample_eight_gaussians",
    "eight_gaussians_pmf",
    "eight_gaussians_entropy",
]

EIGHT_GAUSSIANS_NUM_CLASSES = 91
_STD = 0.1
_RADIUS = 2.0
_CLIP = 2.25
_SCALE = 20.0
_OFFSET = 45


def eight_gaussians_means(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 8 component means, (8, 2): radius 2, angles 0, 45, ..., 315 degrees (axis points exactly on the axes)."""
    s = math.sqrt(2.0)
    means = [[2.0, 0.0], [s, s], [0.0, 2.0], [-s, s], [-2.0, 0.0], [-s, -s], [0.0, -2.0], [s, -s]]
    return torch.tensor(means, dtype=dtype)


def quantize_eight_gaussians(x: torch.Tensor) -> torch.Tensor:
    """Continuous points `x` (..., 2) -> class ids in [0, 90]: clip to [-2.25, 2.25], then round(20 x) + 45."""
    return (torch.round(x.clamp(-_CLIP, _CLIP) * _SCALE) + _OFFSET).long()


def sample_eight_gaussians(
    num_samples: int, generator: Optional[torch.Generator] = None, device: Optional[torch.device] = None
) -> torch.Tensor:
    """`num_samples` quantized points, an (N, 2) int64 tensor of class ids in [0, 90].

    Args:
        num_samples: how many points.
        generator: the random source (component choice and Gaussian noise).
        device: where the ids are made.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    component = torch.randint(0, 8, (num_samples,), generator=generator, device=device)
    noise = torch.randn(num_samples, 2, generator=generator, device=device, dtype=torch.float64)
    x = eight_gaussians_means().to(device)[component] + _STD * noise
    return quantize_eight_gaussians(x)


def _cell_mass(lower: torch.Tensor, upper: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """P(lower < x < upper) for x ~ N(mean, 0.1^2), broadcast. Cells above the mean use upper-tail functions, so
    that far-tail cells keep their relative precision instead of becoming differences of numbers close to 1."""
    a, b = (lower - mean) / (_STD * math.sqrt(2.0)), (upper - mean) / (_STD * math.sqrt(2.0))
    below = 0.5 * (torch.special.erfc(-b) - torch.special.erfc(-a))  # Phi(b) - Phi(a)
    above = 0.5 * (torch.special.erfc(a) - torch.special.erfc(b))  # Q(a) - Q(b)
    return torch.where(a >= 0, above, below)


def eight_gaussians_pmf() -> torch.Tensor:
    """The exact probability mass table, (91, 91) float64: `pmf[i, j] = P(x_1 = i, x_2 = j)`; it sums to 1.

    Class c holds the values x with round(20 x) = c - 45, the interval [(c - 45.5) / 20, (c - 44.5) / 20]; after
    clipping, class 0 also holds everything below -2.25 and class 90 everything above 2.25, so their cells extend to
    -inf and +inf. Each component is a product of independent 1-D Gaussians, so its cell masses factorize.
    """
    k = EIGHT_GAUSSIANS_NUM_CLASSES
    n = torch.arange(k, dtype=torch.float64) - _OFFSET
    lower, upper = (n - 0.5) / _SCALE, (n + 0.5) / _SCALE
    lower[0], upper[-1] = -math.inf, math.inf
    means = eight_gaussians_means()  # (8, 2)
    mass = [_cell_mass(lower, upper, means[:, d, None]) for d in range(2)]  # 2 x (8, 91)
    return torch.einsum("ka,kb->ab", mass[0], mass[1]) / 8.0


def eight_gaussians_entropy() -> float:
    """The exact entropy of the quantized data in nats, -sum p log p over the 91 x 91 table (about 6.320)."""
    pmf = eight_gaussians_pmf()
    return float(-torch.special.xlogy(pmf, pmf).sum())
