# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Gumbel distributions of the paper's Table 5: densities and samplers, stable in float32.

With `e ~ Exponential(1)` (`e = -log u`, `u ~ U(0, 1)`) every sampler is written in terms of `log e`:

    Gumbel(loc):                g = loc - log e
    max_i Gumbel(loc_i):        g ~ Gumbel(logsumexp_i loc_i)
    TruncGumbel(loc, T):        g = loc - log(exp(loc - T) - log u) = T - softplus(T - loc + log e)   (g <= T)

The last form is the paper's `g = loc - log(exp(loc - T) + e)` rewritten so that no exponential of `T - loc` is ever
formed: it neither overflows for a threshold far above the location nor loses the small gap `T - g` for one far below.
The samplers can also return the log density of the sample written in terms of the noise (`log e - e` and
`loc - g - e`), which stays exact where evaluating the density at the rounded sample would not.
"""

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Maechler, 2012). Gives -inf at x = 0 and nan for x > 0."""
    cut = -math.log(2.0)
    # Each branch only sees inputs on its own side of the cut, so the unused one never makes inf or nan gradients.
    near_zero = torch.log(-torch.expm1(x.clamp(min=cut)))
    far = torch.log1p(-torch.exp(x.clamp(max=cut)))
    return torch.where(x > cut, near_zero, far)


def log_expm1(x: torch.Tensor) -> torch.Tensor:
    """log(exp(x) - 1) for x > 0, the inverse of softplus, stable for small and large x."""
    return x + log1mexp(-x)


def log_softplus(x: torch.Tensor) -> torch.Tensor:
    """log(softplus(x)) = log(log(1 + exp(x))), finite for very negative x where softplus underflows to 0."""
    # Below -20, log(log1p(y)) = log(y) - y / 2 + O(y^2) with y = exp(x); the O(y^2) term is below 1e-17.
    tail = x.clamp(max=-20.0)
    tail = tail - 0.5 * torch.exp(tail)
    body = torch.log(F.softplus(x.clamp(min=-20.0)))
    return torch.where(x < -20.0, tail, body)


def standard_exponential(
    shape: Union[torch.Size, Sequence[int]],
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Draws Exponential(1) noise `e = -log u`, strictly positive and finite.

    Args:
        shape: shape of the draw.
        generator: random generator on `device`.
        device, dtype: of the result (dtype defaults to torch's default float type).
    """
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    # torch.rand can return exactly 0; the smallest normal number keeps e finite (about 87 in float32).
    return -torch.log(u.clamp(min=torch.finfo(dtype).tiny))


def gumbel_log_prob(g: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
    """log Gumbel(g | loc) = -(g - loc) - exp(-(g - loc)), elementwise (broadcasting `g` and `loc`)."""
    z = g - loc
    return -z - torch.exp(-z)


def sample_gumbel(
    loc: torch.Tensor, generator: Optional[torch.Generator] = None, return_log_prob: bool = False
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Samples g ~ Gumbel(loc) elementwise, g = loc - log(-log u), reparametrized in `loc`.

    Args:
        loc: locations, any shape; the sample has the same shape, dtype and device.
        generator: random generator on `loc.device`.
        return_log_prob: also return log Gumbel(g | loc), computed from the noise as `log e - e`.
    """
    e = standard_exponential(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    log_e = torch.log(e)
    g = loc - log_e
    if return_log_prob:
        return g, log_e - e
    return g


def truncated_gumbel_log_prob(g: torch.Tensor, loc: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """log TruncGumbel(g | loc, T) = -(g - loc) - exp(-(g - loc)) + exp(-(T - loc)) for g <= T, -inf above T.

    The two exponentials are combined as exp(loc - g + log(1 - exp(g - T))), which neither overflows nor cancels
    when g is close to T. Arguments broadcast against each other.
    """
    g, loc, threshold = torch.broadcast_tensors(g, loc, threshold)
    below = g <= threshold
    gap = torch.where(below, g - threshold, torch.zeros_like(g))  # keeps log1mexp away from positive inputs
    log_prob = (loc - g) - torch.exp(loc - g + log1mexp(gap))
    return torch.where(below, log_prob, torch.full_like(log_prob, -math.inf))


def sample_truncated_gumbel(
    loc: torch.Tensor,
    threshold: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    return_log_prob: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """Samples g ~ Gumbel(loc) conditioned on g <= threshold, reparametrized in `loc` and `threshold`.

    g = T - softplus(T - loc + log e), e ~ Exponential(1): the paper's -log(exp(-T) - log u) with the location put
    back, written so that large |T - loc| neither overflows nor rounds the sample above T. The result is <= T
    everywhere; it equals T only where T is so far below `loc` that the gap underflows.

    Args:
        loc: Gumbel locations.
        threshold: upper bounds T, broadcastable against `loc`; the sample has the broadcast shape.
        generator: random generator on `loc.device`.
        return_log_prob: also return log TruncGumbel(g | loc, T), computed from the noise as `loc - g - e`.
    """
    loc, threshold = torch.broadcast_tensors(loc, threshold)
    e = standard_exponential(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
    g = threshold - F.softplus(threshold - loc + torch.log(e))
    if return_log_prob:
        return g, (loc - g) - e
    return g
