# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Argmax surjections and their probabilistic inverses q(v | x) (Hoogeboom et al., 2021, Section 3).

An argmax flow models a categorical digit x through a continuous v with x = argmax(v). Training needs a
distribution q(v | x) on the region {argmax v = x} whose log density is exact, so that
log P(x) >= E_q[log p(v) - log q(v | x)].

Primitives work on one digit, with the class axis LAST:

- base M > 2: v has M values per digit and the digit is argmax(v).
- base 2: v has ONE value per digit (a bit) and the bit is 1 if v > 0, else 0: the sign plays the role of the
  argmax over the pair (v_1 - v_0 with v_0 fixed at 0).

The surjections map an unconstrained u into the region: v_x = u_x and every other value is pushed below v_x.
Each value v_i (i != x) depends only on u_i and u_x, so the Jacobian is triangular and log|det dv/du| is a sum of
one-dimensional terms.

Where float rounding would leave a pushed value equal to v_x (a tie argmax cannot resolve), it is moved one ulp
below v_x; this changes v by at most one ulp and keeps argmax_decode(v) == x for every draw.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gaussian import gaussian_log_prob, sample_gaussian
from .gumbel import (
    gumbel_log_prob,
    log1mexp,
    log_expm1,
    log_softplus,
    sample_gumbel,
    sample_truncated_gumbel,
    standard_exponential,
    truncated_gumbel_log_prob,
)

_LOG_2 = math.log(2.0)


def _check_base(base) -> int:
    if isinstance(base, bool) or not isinstance(base, int) or base < 2:
        raise ValueError(f"base must be an int >= 2, got {base!r}")
    return base


def _check_values(u: torch.Tensor, digits: torch.Tensor, base: int, name: str = "u"):
    expected = tuple(digits.shape) if base == 2 else (*digits.shape, base)
    if tuple(u.shape) != expected:
        raise ValueError(
            f"{name} must have shape {expected} for digits of shape {tuple(digits.shape)} and base {base}, "
            f"got {tuple(u.shape)}"
        )


def _sign(digits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """+1 for bit 1, -1 for bit 0."""
    return digits.to(dtype) * 2 - 1


def _positive(m: torch.Tensor) -> torch.Tensor:
    # A magnitude that underflows to 0 would lose the sign, hence the bit.
    return m.clamp(min=torch.finfo(m.dtype).tiny)


def _strictly_below(v: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    return torch.minimum(v, torch.nextafter(top, torch.full_like(top, -math.inf)))


def _class_mask(digits: torch.Tensor, base: int) -> torch.Tensor:
    return F.one_hot(digits.long(), base).bool()


def _take(u: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """u[..., x] kept as (..., 1) so that it broadcasts over the class axis."""
    return u.gather(-1, digits.long().unsqueeze(-1))


def threshold(u: torch.Tensor, digits: torch.Tensor, base: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Softplus thresholding: maps any u into {argmax v = digits}.

    base > 2: u, v of shape (..., M); v_x = u_x and v_i = u_x - softplus(u_x - u_i) for i != x, so
    log|det dv/du| = sum_{i != x} log sigmoid(u_x - u_i).
    base 2: u, v of shape (...); v = softplus(u) for bit 1 and -softplus(u) for bit 0, log|det| = log sigmoid(u).

    Args:
        u: unconstrained values.
        digits: integer tensor (...) of digits in [0, base).
        base: M.

    Returns:
        (v, log_det), log_det of shape (...), summed over the class axis only.
    """
    _check_values(u, digits, _check_base(base))
    if base == 2:
        return _sign(digits, u.dtype) * _positive(F.softplus(u)), F.logsigmoid(u)
    mask = _class_mask(digits, base)
    u_x = _take(u, digits)
    gap = u_x - u
    v = torch.where(mask, u_x, _strictly_below(u_x - F.softplus(gap), u_x))
    log_det = torch.where(mask, torch.zeros_like(u), F.logsigmoid(gap)).sum(-1)
    return v, log_det


def threshold_inverse(v: torch.Tensor, digits: torch.Tensor, base: int) -> torch.Tensor:
    """The u that `threshold` maps to v (v must lie in {argmax v = digits}; elsewhere the result is nan)."""
    _check_values(v, digits, _check_base(base), "v")
    if base == 2:
        return log_expm1(_sign(digits, v.dtype) * v)
    mask = _class_mask(digits, base)
    v_x = _take(v, digits)
    gap = torch.where(mask, torch.ones_like(v), v_x - v)
    return torch.where(mask, v_x, v_x - log_expm1(gap))


def gumbel_threshold(u: torch.Tensor, digits: torch.Tensor, base: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gumbel thresholding: the values below v_x follow the truncated-Gumbel quantile of sigmoid(u_i).

    base > 2: u, v of shape (..., M); v_x = u_x, and for i != x, with w_i = sigmoid(u_i) and the standard Gumbel
    truncated below v_x (CDF exp(exp(-v_x) - exp(-g))), v_i is its w_i-quantile:
    v_i = v_x - softplus(v_x + log e_i), e_i = -log w_i = softplus(-u_i).
    Differentiating gives log dv_i/du_i = v_i - softplus(u_i), so log|det| = sum_{i != x} (v_i - softplus(u_i)).

    base 2: the difference of two standard Gumbels is a standard Logistic, and v is the sigmoid(u)-quantile of
    that Logistic truncated to the bit's side of 0. That quantile works out to v = +-softplus(u + log 2),
    with log|det| = log sigmoid(u + log 2).

    Arguments and result as [`threshold`].
    """
    _check_values(u, digits, _check_base(base))
    if base == 2:
        a = u + _LOG_2
        return _sign(digits, u.dtype) * _positive(F.softplus(a)), F.logsigmoid(a)
    mask = _class_mask(digits, base)
    v_x = _take(u, digits)
    below = v_x - F.softplus(v_x + log_softplus(-u))
    v = torch.where(mask, v_x, _strictly_below(below, v_x))
    log_det = torch.where(mask, torch.zeros_like(u), below - F.softplus(u)).sum(-1)
    return v, log_det


def gumbel_threshold_inverse(v: torch.Tensor, digits: torch.Tensor, base: int) -> torch.Tensor:
    """The u that `gumbel_threshold` maps to v (v must lie in {argmax v = digits}; elsewhere the result is nan)."""
    _check_values(v, digits, _check_base(base), "v")
    if base == 2:
        return log_expm1(_sign(digits, v.dtype) * v) - _LOG_2
    mask = _class_mask(digits, base)
    v_x = _take(v, digits)
    gap = torch.where(mask, torch.ones_like(v), v_x - v)
    e = torch.exp(log_expm1(gap) - v_x)
    return torch.where(mask, v_x, -log_expm1(e))


def argmax_decode(v: torch.Tensor, base: int) -> torch.Tensor:
    """Digits encoded by v: argmax over the last axis for base > 2 (v of shape (..., M)), v > 0 for base 2 (v of
    shape (...)). Returns int64 of shape (...)."""
    if _check_base(base) == 2:
        return (v > 0).long()
    if v.shape[-1] != base:
        raise ValueError(f"v must have {base} values on its last axis for base {base}, got shape {tuple(v.shape)}")
    return v.argmax(-1)


def _in_region(v: torch.Tensor, digits: torch.Tensor, base: int) -> torch.Tensor:
    """True where argmax v = digits strictly (no tie), shape (...)."""
    if base == 2:
        return _sign(digits, v.dtype) * v > 0
    mask = _class_mask(digits, base)
    others = torch.where(mask, torch.full_like(v, -math.inf), v)
    return (others < _take(v, digits)).all(-1)


class ArgmaxInverse(nn.Module):
    """
    Base class of the probabilistic inverses q(v | x) of argmax, for digits in base `base`.

    A conditioner supplies `num_params` numbers per digit; the module draws v in {argmax v = x} and returns the exact
    log q(v | x) summed per example. The modules hold no parameters of their own.

    Args:
        base (`int`): M, the number of values a digit takes.

    Attributes:
        base, num_params (parameters per digit), width_per_digit (values of v per digit).
    """

    num_params: int = 0
    width_per_digit: int = 1

    def __init__(self, base: int):
        super().__init__()
        self.base = _check_base(base)

    def extra_repr(self) -> str:
        return f"base={self.base}, num_params={self.num_params}, width_per_digit={self.width_per_digit}"

    def _check_digits(self, digits: torch.Tensor) -> torch.Tensor:
        if digits.is_floating_point() or digits.is_complex() or digits.dtype == torch.bool:
            raise ValueError(f"digits must be an integer tensor, got dtype {digits.dtype}")
        if digits.dim() < 2:
            raise ValueError(f"digits must have shape (batch, ..., num_digits), got {tuple(digits.shape)}")
        bad = (digits < 0) | (digits >= self.base)
        if bad.any():
            raise ValueError(f"digit {digits[bad][0].item()} is outside [0, {self.base}) for base={self.base}")
        return digits.long()

    def _check_inputs(self, digits: torch.Tensor, params: Optional[torch.Tensor]):
        digits = self._check_digits(digits)
        expected = (*digits.shape, self.num_params)
        if params is None:
            if self.num_params > 0:
                raise ValueError(f"{type(self).__name__} needs params of shape {expected}, got None")
        elif tuple(params.shape) != expected or not params.is_floating_point():
            raise ValueError(
                f"params must be a float tensor of shape {expected} (digits {tuple(digits.shape)}, "
                f"{self.num_params} per digit), got {params.dtype} {tuple(params.shape)}"
            )
        return digits

    def _split(self, v: torch.Tensor) -> torch.Tensor:
        """(..., d * width_per_digit) -> values per digit: (..., d) if width_per_digit == 1 else (..., d, width)."""
        if v.dim() < 2 or v.shape[-1] % self.width_per_digit != 0:
            raise ValueError(
                f"v must have shape (batch, ..., num_digits * {self.width_per_digit}), got {tuple(v.shape)}"
            )
        if self.width_per_digit == 1:
            return v
        return v.reshape(*v.shape[:-1], -1, self.width_per_digit)

    def _values(self, v: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
        """`_split(v)`, checked against the digits' shape."""
        values = self._split(v)
        if values.shape[: digits.dim()] != digits.shape:
            raise ValueError(f"v of shape {tuple(v.shape)} does not match digits of shape {tuple(digits.shape)}")
        return values

    def forward(
        self, digits: torch.Tensor, params: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Draws v ~ q(v | digits).

        Args:
            digits: int64 (B, ..., d) digits in [0, base).
            params: float (B, ..., d, num_params) from the conditioner (None when num_params == 0); the layout is
                given in each subclass.
            generator: random generator on the digits' device.

        Returns:
            v of shape (B, ..., d * width_per_digit) (digit j's values at [j * width, (j + 1) * width)), and
            log q(v | digits) of shape (B,), summed over everything but the batch axis.
        """
        digits = self._check_inputs(digits, params)
        v, log_q = self._sample(digits, params, generator)
        return v.reshape(*digits.shape[:-1], -1), log_q.reshape(digits.shape[0], -1).sum(-1)

    def log_prob(self, v: torch.Tensor, digits: torch.Tensor, params: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log q(v | digits) of given v (B, ..., d * width_per_digit), shape (B,); -inf where v does not decode to
        the digits. Same arguments as `forward`."""
        digits = self._check_inputs(digits, params)
        return self._log_prob(self._values(v, digits), digits, params).reshape(digits.shape[0], -1).sum(-1)

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        """v (B, ..., d * width_per_digit) -> digits (B, ..., d), int64."""
        return argmax_decode(self._split(v), self.base)

    def _sample(self, digits, params, generator):
        """Returns v per digit ((..., d) or (..., d, width)) and log q per digit (..., d)."""
        raise NotImplementedError

    def _log_prob(self, values, digits, params):
        """log q per digit (..., d) of values per digit."""
        raise NotImplementedError


class TransformedGaussianInverse(ArgmaxInverse):
    """
    Base class of the inverses that draw an unconstrained u ~ N(mean, exp(log_scale)^2) per value and map it into
    the region {decode(v) = x} by a bijection `transform`: log q(v | x) = log N(u) - log|det dv/du|.

    `transform` is public so that another distribution of u, e.g. a conditional flow q(u | x), can stand in for the
    Gaussian: then log q(v | x) = log q(u | x) - log|det dv/du|.

    Params per digit: width_per_digit 1: 2 (mean, log_scale); width M: 2 * M (M means, then M log-scales, one per
    digit value).
    """

    def transform(self, u: torch.Tensor, digits: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        The bijection from unconstrained u onto {decode(v) = digits}.

        Args:
            u: float (B, ..., d * width_per_digit), laid out as v.
            digits: int64 (B, ..., d) digits in [0, base).

        Returns:
            v of u's shape, and log|det dv/du| of shape (B,), summed over everything but the batch axis.
        """
        digits = self._check_digits(digits)
        v, log_det = self._transform(self._values(u, digits), digits)
        return v.reshape(*digits.shape[:-1], -1), log_det.reshape(digits.shape[0], -1).sum(-1)

    def _transform(self, u, digits):
        """u per digit ((..., d) or (..., d, width)) -> (v per digit, log|det dv/du| per digit (..., d))."""
        raise NotImplementedError

    def _gaussian(self, params):
        if self.width_per_digit == 1:
            return params[..., 0], params[..., 1]
        return params[..., : self.width_per_digit], params[..., self.width_per_digit :]

    def _log_q_u(self, log_q_u):
        """Elementwise log N(u) -> per digit."""
        return log_q_u if self.width_per_digit == 1 else log_q_u.sum(-1)

    def _sample(self, digits, params, generator):
        mean, log_scale = self._gaussian(params)
        u, log_q_u = sample_gaussian(mean, log_scale, generator)
        v, log_det = self._transform(u, digits)
        return v, self._log_q_u(log_q_u) - log_det


class ThresholdingInverse(TransformedGaussianInverse):
    """
    u ~ N(mean, exp(log_scale)^2) then `threshold`: log q(v | x) = log N(u) - log|det dv/du|.

    Params per digit: base > 2: 2 * M (M means, then M log-scales, one per digit value); base 2: 2 (mean,
    log_scale). width_per_digit: M, or 1 for base 2.
    """

    _surjection = staticmethod(threshold)
    _surjection_inverse = staticmethod(threshold_inverse)

    def __init__(self, base: int):
        super().__init__(base)
        self.num_params = 2 if self.base == 2 else 2 * self.base
        self.width_per_digit = 1 if self.base == 2 else self.base

    def _transform(self, u, digits):
        return self._surjection(u, digits, self.base)

    def _log_prob(self, values, digits, params):
        mean, log_scale = self._gaussian(params)
        u = self._surjection_inverse(values, digits, self.base)
        _, log_det = self._transform(u, digits)
        log_q = self._log_q_u(gaussian_log_prob(u, mean, log_scale)) - log_det
        return torch.where(_in_region(values, digits, self.base), log_q, torch.full_like(log_q, -math.inf))


class GumbelThresholdingInverse(ThresholdingInverse):
    """
    u ~ N(mean, exp(log_scale)^2) then `gumbel_threshold`. Params and widths as `ThresholdingInverse`: base > 2:
    2 * M (M means, then M log-scales); base 2: 2 (mean, log_scale).
    """

    _surjection = staticmethod(gumbel_threshold)
    _surjection_inverse = staticmethod(gumbel_threshold_inverse)


class GumbelInverse(ArgmaxInverse):
    """
    Gumbels g_i ~ Gumbel(phi_i) conditioned on argmax g = x, drawn top-down: v_x = max ~ Gumbel(logsumexp phi),
    then v_i ~ TruncGumbel(phi_i, v_x) for i != x. log q(v | x) = log Gumbel(v_x | logsumexp phi) +
    sum_{i != x} log TruncGumbel(v_i | phi_i, v_x).

    base 2: the difference of two Gumbels is Logistic(phi_1 - phi_0), so v ~ Logistic(phi) truncated to v > 0 for
    bit 1 and to v < 0 for bit 0, with log q = log Logistic(v | phi) - log P(sign).

    Params per digit: base > 2: M logits phi; base 2: 1 logit (phi_1 - phi_0). width_per_digit: M, or 1 for base 2.
    """

    def __init__(self, base: int):
        super().__init__(base)
        self.num_params = 1 if self.base == 2 else self.base
        self.width_per_digit = 1 if self.base == 2 else self.base

    def _sample(self, digits, params, generator):
        if self.base == 2:
            sign = _sign(digits, params.dtype)
            a = sign * params[..., 0]  # the Logistic's location on the bit's side
            e = standard_exponential(a.shape, generator=generator, device=a.device, dtype=a.dtype)
            # Survival-function inverse: P(|v| > m) = u, i.e. sigmoid(a - m) = u * sigmoid(a); b = log(u sigmoid(a)).
            b = F.logsigmoid(a) - e
            log_1m = log1mexp(b)
            magnitude = F.softplus(a) + e + log_1m  # = a - logit(exp(b)), written without cancellation
            return sign * _positive(magnitude), log_1m - e
        log_z = torch.logsumexp(params, dim=-1)
        v_max, log_q_max = sample_gumbel(log_z, generator=generator, return_log_prob=True)
        top = v_max.unsqueeze(-1)
        below, log_q_below = sample_truncated_gumbel(params, top, generator=generator, return_log_prob=True)
        mask = _class_mask(digits, self.base)
        v = torch.where(mask, top, _strictly_below(below, top))
        return v, log_q_max + torch.where(mask, torch.zeros_like(v), log_q_below).sum(-1)

    def _log_prob(self, values, digits, params):
        if self.base == 2:
            a = _sign(digits, params.dtype) * params[..., 0]
            magnitude = _sign(digits, values.dtype) * values
            log_q = F.logsigmoid(magnitude - a) + F.logsigmoid(a - magnitude) - F.logsigmoid(a)
        else:
            mask = _class_mask(digits, self.base)
            top = _take(values, digits)
            log_q_below = truncated_gumbel_log_prob(values, params, top)
            log_q = gumbel_log_prob(top.squeeze(-1), torch.logsumexp(params, dim=-1))
            log_q = log_q + torch.where(mask, torch.zeros_like(values), log_q_below).sum(-1)
        return torch.where(_in_region(values, digits, self.base), log_q, torch.full_like(log_q, -math.inf))


class _Dequantization(ArgmaxInverse):
    """v = digit + r with r in [0, 1): one value per digit, decoded by floor (clamped to [0, base))."""

    width_per_digit = 1

    def decode(self, v: torch.Tensor) -> torch.Tensor:
        return torch.floor(self._split(v)).clamp(0, self.base - 1).long()

    @staticmethod
    def _shift(digits, r):
        low = digits.to(r.dtype)
        top = low + 1
        # low + r rounds up to low + 1 for r within half an ulp of 1, which would decode to the next digit.
        return torch.minimum(low + r, torch.nextafter(top, torch.full_like(top, -math.inf)))

    @staticmethod
    def _offset(values, digits):
        r = values - digits.to(values.dtype)
        return r, (r >= 0) & (r < 1)


class UniformDequantization(_Dequantization):
    """v = digit + U(0, 1): log q(v | x) = 0. Params per digit: 0 (params may be None). width_per_digit 1."""

    num_params = 0

    def _sample(self, digits, params, generator):
        dtype = params.dtype if params is not None else torch.get_default_dtype()
        r = torch.rand(digits.shape, generator=generator, device=digits.device, dtype=dtype)
        return self._shift(digits, r), torch.zeros_like(r)

    def _log_prob(self, values, digits, params):
        _, inside = self._offset(values, digits)
        return torch.where(inside, torch.zeros_like(values), torch.full_like(values, -math.inf))


class VariationalDequantization(TransformedGaussianInverse, _Dequantization):
    """
    v = digit + sigmoid(u), u ~ N(mean, exp(log_scale)^2):
    log q(v | x) = log N(u) - log sigmoid(u) - log sigmoid(-u).

    Params per digit: 2 (mean, log_scale). width_per_digit 1.
    """

    num_params = 2

    def _transform(self, u, digits):
        return self._shift(digits, torch.sigmoid(u)), F.logsigmoid(u) + F.logsigmoid(-u)

    def _log_prob(self, values, digits, params):
        r, inside = self._offset(values, digits)
        inside = inside & (r > 0)  # the density vanishes at r = 0, where u = -inf
        r = torch.where(inside, r, torch.full_like(r, 0.5))
        log_r, log_1mr = torch.log(r), torch.log1p(-r)
        log_q = gaussian_log_prob(log_r - log_1mr, params[..., 0], params[..., 1]) - log_r - log_1mr
        return torch.where(inside, log_q, torch.full_like(log_q, -math.inf))


ARGMAX_INVERSES = {
    "thresholding": ThresholdingInverse,
    "gumbel": GumbelInverse,
    "gumbel_thresholding": GumbelThresholdingInverse,
    "uniform_dequantization": UniformDequantization,
    "variational_dequantization": VariationalDequantization,
}


def make_argmax_inverse(name: str, base: int) -> ArgmaxInverse:
    """Builds the inverse called `name` (one of ARGMAX_INVERSES) for digits in base `base`."""
    if name not in ARGMAX_INVERSES:
        raise ValueError(f"unknown argmax inverse {name!r}; expected one of {sorted(ARGMAX_INVERSES)}")
    return ARGMAX_INVERSES[name](base)
