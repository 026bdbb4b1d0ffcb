# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Gumbel utilities (the paper's Table 5) against closed forms, numerical integration and sampling."""

import math

import numpy as np
import pytest
import torch

from hf_multinomial.flows.gumbel import (
    gumbel_log_prob,
    log1mexp,
    log_expm1,
    log_softplus,
    sample_gumbel,
    sample_truncated_gumbel,
    standard_exponential,
    truncated_gumbel_log_prob,
)

N = 20000
# Kolmogorov-Smirnov critical value at level 1e-3 for N samples: 1.95 / sqrt(N).
KS_LIMIT = 1.95 / math.sqrt(N)


def ks_distance(samples: np.ndarray, cdf: np.ndarray) -> float:
    """sup |F_empirical - F| with F evaluated at the sorted samples."""
    n = len(samples)
    ranks = np.arange(1, n + 1) / n
    return float(max(np.max(np.abs(ranks - cdf)), np.max(np.abs(ranks - 1.0 / n - cdf))))


def sample_max_gumbel(logits: torch.Tensor, generator: torch.Generator):
    """The maximum of independent Gumbel(logits_i) over the last axis without drawing them: Gumbel(logsumexp(logits))
    (Table 5). Returns (g_max, loc_max)."""
    loc_max = torch.logsumexp(logits, dim=-1)
    return sample_gumbel(loc_max, generator=generator), loc_max


def numerical_cdf(log_density, lo: float, hi: float, num: int = 200001):
    """Grid and cumulative trapezoid integral of exp(log_density) on [lo, hi], in float64."""
    grid = torch.linspace(lo, hi, num, dtype=torch.float64)
    density = torch.exp(log_density(grid)).numpy()
    steps = np.diff(grid.numpy()) * 0.5 * (density[1:] + density[:-1])
    return grid.numpy(), np.concatenate([[0.0], np.cumsum(steps)])


def test_stable_helpers_match_direct_formulas():
    x = -torch.logspace(-6, 2, 300, dtype=torch.float64)
    torch.testing.assert_close(log1mexp(x), torch.log(1 - torch.exp(x)), rtol=1e-9, atol=1e-12)
    assert log1mexp(torch.tensor(0.0)).item() == -math.inf
    y = torch.logspace(-6, 2, 300, dtype=torch.float64)
    torch.testing.assert_close(log_expm1(y), torch.log(torch.expm1(y)), rtol=1e-12, atol=1e-12)
    z = torch.linspace(-40, 40, 801, dtype=torch.float64)
    # torch's softplus returns x itself above 20, an absolute error below exp(-20) = 2e-9
    torch.testing.assert_close(log_softplus(z), torch.log(torch.log1p(torch.exp(z))), rtol=1e-9, atol=1e-12)
    # Where softplus underflows log_softplus stays finite and tends to x, with finite gradients.
    far = torch.tensor([-200.0, -1e4], requires_grad=True)
    out = log_softplus(far)
    out.sum().backward()
    torch.testing.assert_close(out.detach(), far.detach())
    assert torch.isfinite(far.grad).all()
    e = standard_exponential((N,), generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert (e > 0).all() and torch.isfinite(e).all()


def test_gumbel_log_prob_is_the_gumbel_density():
    loc = torch.tensor([-2.0, 0.0, 3.5], dtype=torch.float64)
    g = torch.linspace(-10, 30, 4001, dtype=torch.float64).unsqueeze(-1)
    reference = torch.distributions.Gumbel(loc, torch.ones_like(loc)).log_prob(g)
    torch.testing.assert_close(gumbel_log_prob(g, loc), reference)
    mass = torch.trapezoid(torch.exp(gumbel_log_prob(g, loc)), g.squeeze(-1), dim=0)
    torch.testing.assert_close(mass, torch.ones_like(mass), rtol=0, atol=1e-6)


def test_sample_gumbel_follows_the_gumbel_cdf():
    generator = torch.Generator().manual_seed(1)
    loc = torch.full((N,), 1.3, dtype=torch.float64)
    g, log_prob = sample_gumbel(loc, generator=generator, return_log_prob=True)
    samples = np.sort(g.numpy())
    assert ks_distance(samples, np.exp(-np.exp(-(samples - 1.3)))) < KS_LIMIT
    torch.testing.assert_close(log_prob, gumbel_log_prob(g, loc))
    # The location is a reparametrization: d g / d loc = 1.
    loc32 = torch.zeros(5, requires_grad=True)
    sample_gumbel(loc32, generator=generator).sum().backward()
    torch.testing.assert_close(loc32.grad, torch.ones(5))


def test_max_of_gumbels_is_gumbel_at_logsumexp():
    generator = torch.Generator().manual_seed(2)
    logits = torch.tensor([0.3, -1.2, 2.0, 0.0, -0.5], dtype=torch.float64)
    loc_max = torch.logsumexp(logits, 0).item()
    draws = sample_gumbel(logits.expand(N, 5), generator=generator)
    g_max, loc = sample_max_gumbel(logits.expand(N, 5), generator=generator)
    torch.testing.assert_close(loc, torch.full((N,), loc_max, dtype=torch.float64))
    for samples in (draws.max(-1).values, g_max):
        samples = np.sort(samples.numpy())
        assert ks_distance(samples, np.exp(-np.exp(-(samples - loc_max)))) < KS_LIMIT
    # The Gumbel-max trick: the argmax is Categorical(softmax(logits)).
    frequency = torch.bincount(draws.argmax(-1), minlength=5).double() / N
    probs = torch.softmax(logits, 0)
    assert ((frequency - probs).abs() <= 4 * torch.sqrt(probs * (1 - probs) / N)).all()
    # Its density is the closed form at logsumexp.
    g = torch.linspace(-5, 20, 11, dtype=torch.float64)
    reference = torch.distributions.Gumbel(torch.tensor(loc_max, dtype=torch.float64), 1.0).log_prob(g)
    torch.testing.assert_close(gumbel_log_prob(g, torch.tensor(loc_max, dtype=torch.float64)), reference)


@pytest.mark.parametrize("loc, threshold", [(0.0, 1.0), (2.0, -1.0), (-1.0, 4.0), (0.5, 0.5)])
def test_truncated_gumbel_samples_follow_table5_density(loc, threshold):
    generator = torch.Generator().manual_seed(3)
    loc_t = torch.full((N,), loc, dtype=torch.float64)
    threshold_t = torch.tensor(threshold, dtype=torch.float64)
    g, log_prob = sample_truncated_gumbel(loc_t, threshold_t, generator=generator, return_log_prob=True)
    assert (g <= threshold).all()
    # The noise-form log density is the Table 5 density at the sample.
    torch.testing.assert_close(log_prob, truncated_gumbel_log_prob(g, loc_t, threshold_t))

    def log_density(x):
        return truncated_gumbel_log_prob(x, torch.tensor(loc, dtype=torch.float64), threshold_t)

    grid, cdf = numerical_cdf(log_density, threshold - 40.0, threshold)
    assert abs(cdf[-1] - 1.0) < 1e-5  # the density integrates to 1 (trapezoid error about 1e-6)
    # The closed-form density (Table 5 written naively, fine in float64 here) agrees.
    x = torch.from_numpy(grid[::1000])
    naive = -(x - loc) - torch.exp(-(x - loc)) + math.exp(-(threshold - loc))
    torch.testing.assert_close(log_density(x), naive)
    samples = np.sort(g.numpy())
    assert ks_distance(samples, np.interp(samples, grid, cdf)) < KS_LIMIT
    mean = float(np.trapezoid(grid * np.exp(log_density(torch.from_numpy(grid)).numpy()), grid))
    assert abs(samples.mean() - mean) < 4 * samples.std() / math.sqrt(N)
    # Above the threshold the density is zero.
    assert log_density(torch.tensor([threshold + 1e-9, threshold + 5.0], dtype=torch.float64)).eq(-math.inf).all()


@pytest.mark.parametrize("gap", [-1e4, -80.0, -30.0, -5.0, 5.0, 30.0, 80.0, 1e4])
def test_truncated_gumbel_is_stable_in_float32(gap):
    """T - loc far from 0 either way: no overflow, no nan, samples never above T, and the right distribution."""
    generator = torch.Generator().manual_seed(4)
    loc = torch.full((N,), 7.0, requires_grad=True)
    threshold = torch.tensor(7.0 + gap, requires_grad=True)
    g, log_prob = sample_truncated_gumbel(loc, threshold, generator=generator, return_log_prob=True)
    assert torch.isfinite(g).all() and torch.isfinite(log_prob).all()
    assert (g <= threshold).all()
    (g.sum() + log_prob.sum()).backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(threshold.grad).all()
    g = g.detach().double()
    if gap >= 30:  # the truncation is far in the tail: a plain Gumbel(loc), mean loc + Euler's gamma
        assert abs(g.mean().item() - (7.0 + 0.5772156649)) < 4 * (math.pi / math.sqrt(6)) / math.sqrt(N)
    elif gap <= -30:  # T - g ~ Exponential(rate exp(-gap)): g is T to float32 precision
        assert (threshold.detach() - g).abs().max().item() <= 2 * torch.finfo(torch.float32).eps * abs(7.0 + gap)
        # log density (loc - g) - e <= -(T - loc) + (T - g): T's rounding (eps / 2 |T|), T - g (2 eps |T|, above)
        # and two more roundings of eps / 2: at most 4 eps |T| above -gap.
        assert (log_prob.detach().double() <= -gap + 4 * torch.finfo(torch.float32).eps * abs(7.0 + gap)).all()
    # The log density at the samples never overflows either.
    direct = truncated_gumbel_log_prob(g[:100].float(), loc.detach()[:100], threshold.detach())
    assert not torch.isnan(direct).any()
