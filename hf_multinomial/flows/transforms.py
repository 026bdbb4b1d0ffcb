# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Invertible building blocks of the density flows: the elementwise mixture-of-logistics CDF transform (Flow++,
Ho et al., 2019), the invertible 1x1 mixing of a channel axis (of sequences and of images), and the reversal of
the sequence axis.

The elementwise transform maps x to

    y = logit(sum_k pi_k * sigmoid((x - mu_k) / s_k)) * exp(a) + b,

a strictly increasing bijection of the real line whose tails are linear. Its parameters come per element from a
conditioner, laid out on the last axis as [logits of pi (K), mu (K), log s (K), a, b], 3 K + 2 values in all.
"""

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# log s is clamped from below so that no component becomes a step function; exp(a) is softly bounded to
# [exp(-SCALE_BOUND), exp(SCALE_BOUND)]: the mixture already sets the slope, a only rescales its logit.
MIN_LOG_SCALE = -7.0
SCALE_BOUND = 4.0


def mixture_num_params(num_mixtures: int) -> int:
    """Number of conditioner outputs per element for a mixture of `num_mixtures` logistics: 3 K + 2."""
    return 3 * num_mixtures + 2


def init_mixture_bias(bias: torch.Tensor, num_mixtures: int, spread: float = 0.5) -> None:
    """Initialise the bias of a conditioner's output layer whose weight is zero.

    Every parameter starts at zero except the component means, which start spread evenly over [-spread, spread]:
    with identical components their gradients would be identical and the components would never separate. The
    transform then starts close to the identity (exactly the identity for one component).

    Args:
        bias (`torch.Tensor` of shape `(..., 3 K + 2)` after a reshape, or flat with that period):
            The bias to fill in place; its size must be a multiple of 3 K + 2.
        num_mixtures (`int`): K.
        spread (`float`): Half-width of the initial means.
    """
    num_params = mixture_num_params(num_mixtures)
    if bias.numel() % num_params != 0:
        raise ValueError(f"bias has {bias.numel()} values, not a multiple of 3 * num_mixtures + 2 = {num_params}")
    with torch.no_grad():
        view = bias.view(-1, num_params)
        view.zero_()
        if num_mixtures > 1:
            view[:, num_mixtures : 2 * num_mixtures] = torch.linspace(-spread, spread, num_mixtures)


def _split_params(params: torch.Tensor, num_mixtures: int):
    k = num_mixtures
    if params.shape[-1] != mixture_num_params(k):
        raise ValueError(f"params must have 3 * {k} + 2 = {mixture_num_params(k)} values on the last axis, got "
                         f"shape {tuple(params.shape)}")
    log_pi = F.log_softmax(params[..., :k], dim=-1)
    mu = params[..., k : 2 * k]
    log_s = params[..., 2 * k : 3 * k].clamp(min=MIN_LOG_SCALE)
    a = SCALE_BOUND * torch.tanh(params[..., 3 * k] / SCALE_BOUND)
    b = params[..., 3 * k + 1]
    return log_pi, mu, log_s, a, b


def _logit_mixture(x: torch.Tensor, log_pi, mu, log_s) -> Tuple[torch.Tensor, torch.Tensor]:
    """logit(c(x)) and log(d logit(c) / dx) for c the mixture CDF, both computed from log-sigmoids so that
    neither tail loses precision (c and 1 - c are never formed)."""
    t = (x.unsqueeze(-1) - mu) * torch.exp(-log_s)
    log_sig_pos = F.logsigmoid(t)
    log_sig_neg = F.logsigmoid(-t)
    log_c = torch.logsumexp(log_pi + log_sig_pos, dim=-1)
    log_1mc = torch.logsumexp(log_pi + log_sig_neg, dim=-1)
    log_pdf = torch.logsumexp(log_pi - log_s + log_sig_pos + log_sig_neg, dim=-1)
    return log_c - log_1mc, log_pdf - log_c - log_1mc


def mixture_logistic_cdf(x: torch.Tensor, params: torch.Tensor, num_mixtures: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The elementwise transform, data direction to base direction.

    Args:
        x (`torch.Tensor` of any shape `S`): Values to transform.
        params (`torch.Tensor` of shape `S + (3 K + 2,)`): Unconstrained parameters per element.
        num_mixtures (`int`): K.

    Returns:
        `(y, log_det)`: y of shape `S`, and log |dy/dx| per element, of shape `S`.
    """
    log_pi, mu, log_s, a, b = _split_params(params, num_mixtures)
    logit_c, log_dlogit = _logit_mixture(x, log_pi, mu, log_s)
    return logit_c * torch.exp(a) + b, log_dlogit + a


def mixture_logistic_cdf_inverse(
    y: torch.Tensor, params: torch.Tensor, num_mixtures: int, max_iter: int = 200
) -> torch.Tensor:
    """Inverse of [`mixture_logistic_cdf`], found per element by bisection safeguarded Newton steps.

    With u = (y - b) exp(-a), the root of logit(c(x)) = u lies in [min_k (mu_k + s_k u), max_k (mu_k + s_k u)]
    (c is a convex combination of sigmoid(t_k), so logit(c) lies between the smallest and largest t_k). Each
    iteration takes the Newton step when it falls strictly inside the current bracket and is at most half the
    step before the last one, and bisects otherwise (Numerical Recipes' rtsafe), so it converges quadratically near the
    root and never slower than bisection far from it.

    Stopping rule (the solver's stated accuracy): an element stops once its bracket, or its last Newton step, is at
    most `4 * eps * (|x| + s_min)`, with `eps` the machine epsilon of y's dtype and `s_min` the element's narrowest
    logistic scale: x is then within 4 ulps of a sign change of logit(c(x)) - u as evaluated in that dtype, or
    close enough to it that no t_k = (x - mu_k) / s_k moves by more than 4 eps. Every two iterations at least halve
    the step, so an element stops within 2 log2(initial bracket / tolerance) iterations, fewer than 150 in float64
    for brackets up to 1e3 wide, on any CPU; `max_iter` is only a safety net. The search runs without autograd; one
    final Newton step with the derivative detached restores the exact gradient with respect to y and params
    (implicit function theorem) at no cost to the value.

    Args:
        y (`torch.Tensor` of any shape `S`): Values in the base direction.
        params (`torch.Tensor` of shape `S + (3 K + 2,)`): The same parameters as in the forward direction.
        num_mixtures (`int`): K.
        max_iter (`int`): Upper bound on iterations; the loop stops as soon as every element has met the rule.

    Returns:
        `torch.Tensor` of shape `S`: x with mixture_logistic_cdf(x, params)[0] == y.
    """
    log_pi, mu, log_s, a, b = _split_params(params, num_mixtures)
    u = (y - b) * torch.exp(-a)
    rtol = 4 * torch.finfo(y.dtype).eps  # see the stopping rule above
    tiny = torch.finfo(y.dtype).tiny
    with torch.no_grad():
        log_pi_, mu_, log_s_, u_ = log_pi.detach(), mu.detach(), log_s.detach(), u.detach()
        # |logit(c(x)) - u| <= f_tol is |y(x) - y| <= 4 eps (|y| + 1).
        f_tol = rtol * (y.detach().abs() + 1) * torch.exp(-a.detach())
        ends = mu_ + torch.exp(log_s_) * u_.unsqueeze(-1)
        lo, hi = ends.min(dim=-1).values, ends.max(dim=-1).values
        x = 0.5 * (lo + hi)
        # The last two steps taken, per element; a Newton step must be at most half the older one.
        last_step = older_step = hi - lo
        done = (hi - lo) <= rtol * x.abs() + tiny
        for _ in range(max_iter):
            if bool(done.all()):
                break
            logit_c, log_dlogit = _logit_mixture(x, log_pi_, mu_, log_s_)
            f = logit_c - u_
            at_root = f.abs() <= f_tol
            lo = torch.where(f <= 0, x, lo)
            hi = torch.where(f >= 0, x, hi)
            step = f * torch.exp(-log_dlogit)
            newton = x - step
            # Newton only where it stays inside the bracket and at least halves the step before last.
            use_newton = (newton > lo) & (newton < hi) & (step.abs() <= 0.5 * older_step.abs())
            bisection = 0.5 * (lo + hi)
            converged = use_newton & (step.abs() <= rtol * x.abs() + tiny)
            x_new = torch.where(use_newton, newton, bisection)
            older_step = torch.where(done, older_step, last_step)
            last_step = torch.where(done, last_step, torch.where(use_newton, step, x - bisection))
            done = done | at_root
            x = torch.where(done, x, x_new)
            done = done | converged | ((hi - lo) <= rtol * x.abs() + tiny)
    if not (torch.is_grad_enabled() and (y.requires_grad or params.requires_grad)):
        return x
    logit_c, log_dlogit = _logit_mixture(x, log_pi, mu, log_s)
    return x - (logit_c - u) * torch.exp(-log_dlogit).detach()


class ChannelMixing(nn.Module):
    """Invertible 1x1 mixing of the channel axis `dim` (the last axis of sequences `(B, L, D)`, axis 1 of images
    `(B, C, H, W)`): every position's channel vector v goes to W v, with W = P L (U + diag(sign * exp(log_s))) in LU
    form (Kingma & Dhariwal, 2018) so that log |det W| = sum(log_s) costs nothing and W stays invertible.

    Initialised to a random rotation (QR of a Gaussian matrix drawn from torch's global generator, like any
    module's initial weights).

    Args:
        num_channels (`int`): Size of the channel axis.
        dim (`int`): The channel axis.
    """

    def __init__(self, num_channels: int, dim: int = -1):
        super().__init__()
        self.num_channels = num_channels
        self.dim = dim
        q, _ = torch.linalg.qr(torch.randn(num_channels, num_channels, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("permutation", p.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(num_channels, num_channels), -1))
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(diag.abs()).float())

    def weight(self) -> torch.Tensor:
        eye = torch.eye(self.num_channels, dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.permutation @ lower @ upper

    def _mix(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.dim in (-1, x.dim() - 1):
            return x @ weight.T
        return (x.movedim(self.dim, -1) @ weight.T).movedim(-1, self.dim).contiguous()

    def forward(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """v -> (z, log_det (B,)); every position contributes log |det W|."""
        positions = v[0].numel() // self.num_channels
        log_det = self.log_s.sum() * positions
        return self._mix(v, self.weight()), log_det.expand(v.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self._mix(z, torch.linalg.inv(self.weight()))


class ReverseSequence(nn.Module):
    """Reverses the sequence axis (axis 1) of (B, L, D) tensors; volume preserving and its own inverse."""

    def forward(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return v.flip(1), v.new_zeros(v.shape[0])

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z.flip(1)

