# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Multinomial diffusion (Hoogeboom et al., 2021) as a diffusers scheduler, computed in log space."""

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

# Log-probability that stands in for log(0) in one-hot vectors: exp(-69) is far below any probability the
# forward process produces, yet stays finite so that no inf - inf appears in float32.
LOG_ZERO = math.log(1e-30)


@dataclass
class MultinomialSchedulerOutput(BaseOutput):
    """
    Output of [`MultinomialScheduler.step`].

    Args:
        prev_sample (`torch.LongTensor` of shape `(batch_size, ...)`):
            Class indices of the sample at the previous timestep, to be fed to the denoiser at the next step.
        pred_original_sample (`torch.FloatTensor` of shape `(batch_size, num_classes, ...)`):
            The denoiser's prediction of the clean sample x_0, as log-probabilities over the classes.
    """

    prev_sample: torch.LongTensor
    pred_original_sample: torch.FloatTensor


@dataclass
class MultinomialCorrectorOutput(BaseOutput):
    """
    Output of [`MultinomialScheduler.step_correct`]: a proposed corrector move, to be settled by
    [`MultinomialScheduler.accept_correction`] once the denoiser has seen it.

    Args:
        proposal (`torch.LongTensor` of shape `(batch_size, ...)`):
            The sample with the chosen positions redrawn, at the same timestep.
        positions (`torch.LongTensor` of shape `(batch_size, num_positions)`):
            The resampled positions, as indices into the flattened non-batch dimensions.
        log_selection (`torch.FloatTensor` of shape `(batch_size,)`, *optional*):
            With one position per move, the log-probability with which the current sample chose it; None otherwise.
        has_candidates (`torch.BoolTensor` of shape `(batch_size,)`):
            False for an example with no position it may resample (its proposal is the sample itself).
    """

    proposal: torch.LongTensor
    positions: torch.LongTensor
    log_selection: Optional[torch.FloatTensor]
    has_candidates: torch.BoolTensor


@dataclass
class MultinomialLossOutput(BaseOutput):
    """
    Output of [`MultinomialScheduler.compute_loss_terms`], each of shape `(batch_size,)` in nats.

    Args:
        loss (`torch.FloatTensor`): L_t of `compute_loss`.
        jump_nll (`torch.FloatTensor`): -log p(x_0 | x_t) of `jump_to_start_nll`.
        prior_kl (`torch.FloatTensor`): KL(q(x_T | x_0) || uniform) of `prior_kl`.
    """

    loss: torch.FloatTensor
    jump_nll: torch.FloatTensor
    prior_kl: torch.FloatTensor


def log_1_min_a(a: np.ndarray) -> np.ndarray:
    """log(1 - exp(a)) for a <= 0, stable at both ends (Maechler, 2012)."""
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(a > -math.log(2), np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


def cosine_log_alpha_bar(num_train_timesteps: int, s: float = 0.008) -> np.ndarray:
    """log(alpha_bar_t) for t = 1..T of the paper's cosine schedule, in float64.

    alpha_bar_t = f(t) / f(0) with f(t) = cos(((t / T + s) / (1 + s)) * pi / 2). Unlike the Gaussian case the
    cosine is not squared, so that alpha_bar_t plays the role of sqrt(alpha_bar_t) there. alpha_bar_T = 0 exactly,
    which makes x_T uniform and the prior term zero.
    """
    t = np.arange(num_train_timesteps + 1, dtype=np.float64)
    f = np.cos((t / num_train_timesteps + s) / (1 + s) * math.pi / 2)
    f[-1] = 0.0  # cos(pi / 2) evaluates to 6e-17, not 0
    with np.errstate(divide="ignore"):
        return np.log(f[1:] / f[0])


def _is_integer(value) -> bool:
    """A Python or numpy integer, and not a bool (which Python counts as an int)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_positive_real(name: str, value) -> None:
    """A positive finite real number (an int or float, not a bool, NaN or inf)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _preview(values: torch.Tensor, limit: int = 6) -> str:
    """The first values of a tensor, for an error message."""
    flat = values.detach().flatten()
    text = ", ".join(repr(v) for v in flat[:limit].tolist())
    return text if values.dim() == 0 else f"[{text}{', ...' if flat.numel() > limit else ''}]"


def _short_list(values: List, limit: int = 8) -> str:
    """`[a, b, ...]` with at most `limit` entries and the count of the rest."""
    shown = ", ".join(str(v) for v in values[:limit])
    return f"[{shown}, ... {len(values) - limit} more]" if len(values) > limit else f"[{shown}]"


class _Checks:
    """
    The tensor-valued input checks of one public call, settled together with one host sync per device.

    Each check is a 0-dim bool tensor (True when it passes) and a function that raises the detailed error: the
    message, which needs more values from the device, is built only when a check fails. Validating a call then costs
    one synchronisation (`run`), however many tensors it checks.
    """

    def __init__(self):
        self._checks = []

    def add(self, passed: torch.Tensor, fail: Callable[[], None]) -> None:
        self._checks.append((passed, fail))

    def run(self) -> None:
        by_device = {}
        for passed, fail in self._checks:
            by_device.setdefault(passed.device, []).append((passed, fail))
        for checks in by_device.values():
            for ok, (_, fail) in zip(torch.stack([passed for passed, _ in checks]).tolist(), checks):
                if not ok:
                    fail()


# ---------------------------------------------------------------------- K-wide reductions for the class-id fast paths
#
# With one-hot x_0 and x_t every loss term needs, over the K classes, only the logits at x_0 and x_t, the
# normaliser lse = logsumexp(z) and one sum H = sum_k log(1 + r softmax(z)_k) (see `MultinomialScheduler.compute_loss`).
# `_ClassSums` computes them in slices of about `_CHUNK_ELEMENTS` logits, so that the temporaries are slice-sized and
# not (B, K, L), and its backward recomputes what it needs from the logits (which autograd keeps anyway): the only
# (B, K, L) tensor it allocates is the gradient itself.

_CHUNK_ELEMENTS = 1 << 22  # 16 MiB of float32 per temporary

# exp(log r) must stay finite in float32. log r = log(K alpha_bar / (1 - alpha_bar)) reaches 80 only for K / (1 -
# alpha_bar_0) > 5e34, which no schedule with a table that fits in memory comes near; the clamp is a backstop only.
_MAX_LOG_RATIO = 80.0


def _class_chunks(batch: int, num_classes: int, positions: int):
    """Slices `(batch, positions)` of a `(B, K, N)` tensor holding at most about `_CHUNK_ELEMENTS` values each."""
    per_example = num_classes * positions
    if per_example <= _CHUNK_ELEMENTS:
        step = max(1, _CHUNK_ELEMENTS // per_example)
        for b in range(0, batch, step):
            yield slice(b, min(batch, b + step)), slice(None)
    else:
        step = max(1, _CHUNK_ELEMENTS // num_classes)
        for b in range(batch):
            for n in range(0, positions, step):
                yield slice(b, b + 1), slice(n, min(positions, n + step))


class _ClassSums(torch.autograd.Function):
    """
    For logits `z` of shape `(B, K, N)`, ids `x0`, `xt` of shape `(B, N)` and `log_r` of shape `(B, 1)` (or None):
    `lse = logsumexp_k z`, `z0 = z[x0]`, `zt = z[xt]` and `H = sum_k log1p(r softmax(z)_k)` (None without `log_r`),
    each `(B, N)`.

    Forward: per slice one max, one exp and one sum for lse; H reuses that exp (`r softmax(z) = exp(z - max) r / s`)
    with one more log1p and sum. Backward (d softmax_k = p_k (delta - p), sigma_k = r p_k / (1 + r p_k)):
    dz = p (g_lse - g_H sum_k sigma_k) + g_H sigma + g_z0 onehot(x0) + g_zt onehot(xt), written slice by slice into
    the gradient.
    """

    @staticmethod
    def forward(ctx, logits, x0, xt, log_r):
        batch, num_classes, positions = logits.shape
        lse = logits.new_empty(batch, positions)
        sums = logits.new_empty(batch, positions) if log_r is not None else None
        ratio = log_r.clamp(max=_MAX_LOG_RATIO).exp().unsqueeze(-1) if log_r is not None else None  # (B, 1, 1)
        for rows, cols in _class_chunks(batch, num_classes, positions):
            z = logits[rows, :, cols]
            top = z.amax(dim=1, keepdim=True)
            e = z - top
            e.exp_()
            total = e.sum(dim=1, keepdim=True)
            lse[rows, cols] = (top + total.log()).squeeze(1)
            if sums is not None:
                e.mul_(ratio[rows] / total).log1p_()
                sums[rows, cols] = e.sum(dim=1)
            del e
        z0 = logits.gather(1, x0.unsqueeze(1)).squeeze(1)
        zt = logits.gather(1, xt.unsqueeze(1)).squeeze(1)
        ctx.save_for_backward(logits, x0, xt, lse, ratio)
        return lse, z0, zt, sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_lse, grad_z0, grad_zt, grad_sums):
        logits, x0, xt, lse, ratio = ctx.saved_tensors
        batch, num_classes, positions = logits.shape
        grad = torch.empty_like(logits)
        if grad_lse is None:
            grad_lse = lse.new_zeros(())
        grad_lse = grad_lse.expand(batch, positions)
        use_sums = ratio is not None and grad_sums is not None
        for rows, cols in _class_chunks(batch, num_classes, positions):
            g = grad[rows, :, cols]
            torch.sub(logits[rows, :, cols], lse[rows, cols].unsqueeze(1), out=g)
            g.exp_()  # softmax
            coef = grad_lse[rows, cols].unsqueeze(1)
            if use_sums:
                sigma = g * ratio[rows]
                sigma.reciprocal_().add_(1).reciprocal_()  # r p / (1 + r p), exact 0 where p underflows
                g_sums = grad_sums[rows, cols].unsqueeze(1)
                coef = coef - g_sums * sigma.sum(dim=1, keepdim=True)
                g.mul_(coef).add_(sigma.mul_(g_sums))
                del sigma
            else:
                g.mul_(coef)
        if grad_z0 is not None:
            grad.scatter_add_(1, x0.unsqueeze(1), grad_z0.unsqueeze(1))
        if grad_zt is not None:
            grad.scatter_add_(1, xt.unsqueeze(1), grad_zt.unsqueeze(1))
        return grad, None, None, None


def _softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)), exact to rounding in float32 and float64 (torch's default threshold of 20 would cut 2e-9 off
    in float64); 0 with a zero gradient at -inf."""
    return F.softplus(x, threshold=40.0 if x.dtype == torch.float64 else 20.0)


# Per-timestep float64 scalars of the class-id loss terms, one row per t in [0, T) (see `_loss_table`).
_LOSS_COLUMNS = ("jump_rho", "log_r", "log_av", "lkrav", "q0_ne", "qt_ne", "w_ne", "q0_eq", "w_eq")


def _loss_table(num_classes: int, tables64: dict, t: np.ndarray, prev_t: np.ndarray) -> np.ndarray:
    """
    The `(len(t), len(_LOSS_COLUMNS))` float64 table of the class-id loss scalars of the reverse steps from scheduler
    index `t` to `prev_t` (arrays, `-1 <= prev_t < t`; the training steps are `prev_t = t - 1`).

    With c = alpha_bar_prev, u = (1 - c) / K, a = alpha_bar_t / alpha_bar_prev, v = (1 - a) / K:
    - `jump_rho`: log(alpha_bar_t K / (1 - alpha_bar_t)), the odds of q(x_t | x_0) at x_t = x_0 against elsewhere
      (-inf where alpha_bar_t = 0);
    - `log_r` = log(c / u) and `log_av` = log(a / v) (-inf where a = 0); where prev_t = -1, which has no KL term
      (the jump to the data replaces it), log_r = 0;
    - `lkrav` = log(K + r + a / v), the log normaliser Z_ne of the true posterior when x_t != x_0, in units of u v;
    - the true posterior's probabilities: at x_0 (`q0_*`), at x_t (`qt_ne`) and at any other class (`w_*`), for
      x_t != x_0 (`_ne`) and x_t == x_0 (`_eq`, normaliser Z_eq = Z_ne + (a / v) r).
    a is formed as a difference of the float64 log tables (for prev_t = t - 1 the same subtraction as `log_alpha`).
    """
    log_k = math.log(num_classes)
    lcab, l1m = tables64["log_cumprod_alpha"], tables64["log_1_min_cumprod_alpha"]  # index 0 is t = -1
    t, prev_t = np.asarray(t, dtype=np.int64), np.asarray(prev_t, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        jump_rho = lcab[t + 1] - l1m[t + 1] + log_k
        log_r = np.where(prev_t == -1, 0.0, lcab[prev_t + 1] - l1m[prev_t + 1] + log_k)
        log_a = lcab[t + 1] - lcab[prev_t + 1]
        log_av = log_a - log_1_min_a(log_a) + log_k
        lkrav = np.logaddexp(np.logaddexp(log_k, log_r), log_av)
        log_zeq = np.logaddexp(lkrav, log_av + log_r)
        hs, lam = np.logaddexp(0.0, log_r), np.logaddexp(0.0, log_av)  # log(1 + r), log(1 + a / v)
        columns = {
            "jump_rho": jump_rho,
            "log_r": log_r,
            "log_av": log_av,
            "lkrav": lkrav,
            "q0_ne": np.exp(hs - lkrav),
            "qt_ne": np.exp(lam - lkrav),
            "w_ne": np.exp(-lkrav) * (num_classes > 2),  # no third class when K = 2
            "q0_eq": np.exp(lam + hs - log_zeq),
            "w_eq": np.exp(-log_zeq),
        }
    return np.stack([columns[name] for name in _LOSS_COLUMNS], axis=1)


def _uniform_prior_kl(num_classes: int, log_alpha_bar: float, log_1_min_alpha_bar: float) -> float:
    """KL(q(x_T | x_0) || uniform) for one position, in float64: q(x_T | x_0) takes the value a + (1 - a) / K at x_0
    and (1 - a) / K at the K - 1 other classes (a = alpha_bar_T; 0 for the cosine schedule, where the KL vanishes)."""
    log_k = math.log(num_classes)
    with np.errstate(divide="ignore"):
        log_q0 = np.logaddexp(log_alpha_bar, log_1_min_alpha_bar - log_k)
        rest = (num_classes - 1) / num_classes * np.exp(log_1_min_alpha_bar) * log_1_min_alpha_bar
    return float(np.exp(log_q0) * (log_q0 + log_k) + rest)


class MultinomialScheduler(SchedulerMixin, ConfigMixin):
    """
    Multinomial diffusion for categorical data (Hoogeboom, Nielsen, Jaini, Forre and Welling, NeurIPS 2021).

    The forward process mixes a one-hot sample with the uniform distribution,
    `q(x_t | x_{t-1}) = Cat(x_t | alpha_t x_{t-1} + (1 - alpha_t) / K)`, and the reverse process is parametrised by
    a denoiser that predicts x_0 (logits over the K classes). All probabilities are handled as log-probabilities
    with the class axis at dim 1, `log_x` of shape `(batch_size, K, ...)`.

    Timesteps are indices `t` in `{0, ..., T - 1}`; the sample at index `t` is the paper's `x_{t+1}`, index `T - 1`
    is (almost) pure noise, and `-1` stands for the clean data x_0. This is the convention of the paper's pseudo-code
    and of diffusers.

    This scheduler runs no model: the loss terms (`compute_loss`, `jump_to_start_nll`, `prior_kl`) take the denoiser's
    output, and the loops over timesteps that call a denoiser (sampling, the negative ELBO) live in the pipeline and
    in `hf_multinomial.evaluation`.

    This scheduler inherits from [`SchedulerMixin`] and [`ConfigMixin`]. Check the superclass documentation for the generic
    methods the library implements for all schedulers such as loading and saving.

    Args:
        num_classes (`int`):
            K, the number of categories of every variable.
        num_train_timesteps (`int`, defaults to 1000):
            T, the number of diffusion steps the model is trained with.
        schedule (`str`, defaults to `"cosine"`):
            The noise schedule. Only `"cosine"` (the paper's Appendix B) is available.
    """

    config_name = "scheduler_config.json"
    order = 1

    @register_to_config
    def __init__(self, num_classes: int, num_train_timesteps: int = 1000, schedule: str = "cosine"):
        if not _is_integer(num_classes) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not _is_integer(num_train_timesteps) or num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be an integer >= 1, got {num_train_timesteps!r}")
        if schedule != "cosine":
            raise ValueError(f"Unknown schedule {schedule!r}; the available schedule is 'cosine'")

        log_cumprod_alpha = cosine_log_alpha_bar(num_train_timesteps)
        log_alpha = np.diff(log_cumprod_alpha, prepend=0.0)
        # Index 0 of the extended tables is the clean data (t = -1), where alpha_bar = 1.
        log_cumprod_alpha_ext = np.concatenate([[0.0], log_cumprod_alpha])
        self._tables64 = {
            "log_alpha": log_alpha,
            "log_1_min_alpha": log_1_min_a(log_alpha),
            "log_cumprod_alpha": log_cumprod_alpha_ext,
            "log_1_min_cumprod_alpha": log_1_min_a(log_cumprod_alpha_ext),
        }
        steps = np.arange(num_train_timesteps)
        self._loss_table64 = _loss_table(num_classes, self._tables64, steps, steps - 1)
        self._prior_kl_per_position = _uniform_prior_kl(
            num_classes, log_cumprod_alpha_ext[-1], self._tables64["log_1_min_cumprod_alpha"][-1]
        )
        self._table_cache = {}
        self._previous_cache = None

        self.num_inference_steps = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.long)

    def __len__(self):
        return self.config.num_train_timesteps

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    # ------------------------------------------------------------------ input checks
    #
    # Every public method validates its own arguments once, collecting the checks that need tensor values in a
    # `_Checks` settled with one host sync; the private methods (`_q_pred`, `_q_posterior`, ...) that do the work
    # check nothing, and public methods never call each other.

    def _check_indices(self, checks: _Checks, x, name: str) -> None:
        """`x` must be an integer tensor of class ids in [0, num_classes)."""
        if not torch.is_tensor(x):
            raise ValueError(f"{name} must be a tensor of class indices, got {type(x).__name__}")
        if torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices, got dtype {x.dtype}")
        if x.numel():
            low, high = torch.aminmax(x)

            def fail():
                low, high = int(x.min()), int(x.max())
                bad = low if low < 0 else high
                raise ValueError(
                    f"{name} holds class id {bad}, outside [0, {self.num_classes}) (num_classes={self.num_classes})"
                )

            checks.add((low >= 0) & (high < self.num_classes), fail)

    def _check_timesteps(
        self, checks: _Checks, t, name: str, low: int = 0, device=None
    ) -> Union[int, torch.Tensor]:
        """
        `t` must be an integer, or an integer tensor of shape `()` or `(B,)`, in `[low, T)`; returns it as an `int` or
        a tensor (a list becomes a tensor on `device`). Fractional values and bools are refused, never truncated.
        """
        T = self.config.num_train_timesteps
        if isinstance(t, (list, tuple)):
            t = torch.tensor(t, device=device)
        if torch.is_tensor(t):
            if torch.is_floating_point(t) or torch.is_complex(t) or t.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer timesteps, got {_preview(t)} (dtype {t.dtype})")
            if t.dim() > 1:
                raise ValueError(f"{name} must be a scalar or have shape (batch_size,), got shape {tuple(t.shape)}")
            if t.numel():
                t_min, t_max = torch.aminmax(t)

                def fail():
                    bad = t[(t < low) | (t >= T)]
                    raise ValueError(
                        f"{name} holds {int(bad.flatten()[0])}, outside [{low}, {T}) (num_train_timesteps={T})"
                    )

                checks.add((t_min >= low) & (t_max < T), fail)
            return t
        if not _is_integer(t):
            raise ValueError(f"{name} must be an integer or an integer tensor, got {t!r}")
        if not low <= t < T:
            raise ValueError(f"{name}={int(t)} is outside [{low}, {T}) (num_train_timesteps={T})")
        return int(t)

    def _check_scalar_timestep(self, timestep, name: str = "timestep") -> int:
        """One timestep (an integer or a one-element integer tensor) in `[0, T)`, as an `int`."""
        if torch.is_tensor(timestep):
            if timestep.numel() != 1:
                raise ValueError(f"{name} must be a single timestep, got shape {tuple(timestep.shape)}")
            if torch.is_floating_point(timestep) or torch.is_complex(timestep) or timestep.dtype == torch.bool:
                raise ValueError(f"{name} must be an integer, got {_preview(timestep)} (dtype {timestep.dtype})")
            timestep = int(timestep)
        return self._check_timesteps(_Checks(), timestep, name)

    def _check_log_probs(self, checks: Optional[_Checks], log_x, name: str) -> None:
        """`log_x` must have the class axis at dim 1; with `checks`, each position also needs a finite maximum (no
        NaN or +inf, and not every class at log 0 = -inf)."""
        if not torch.is_tensor(log_x) or log_x.dim() < 2 or log_x.shape[1] != self.num_classes:
            shape = tuple(log_x.shape) if torch.is_tensor(log_x) else type(log_x).__name__
            raise ValueError(
                f"{name} must have the class axis at dim 1 with {self.num_classes} classes, got shape {shape}"
            )
        if checks is not None and log_x.numel():

            def fail():
                maxima = log_x.amax(dim=1)
                bad = maxima[~torch.isfinite(maxima)]
                raise ValueError(
                    f"{name} must be log-probabilities with a finite maximum over the classes at every position, "
                    f"got a maximum of {float(bad.flatten()[0])} ({int(bad.numel())} positions)"
                )

            checks.add(torch.isfinite(log_x.amax(dim=1)).all(), fail)

    def _check_finite_logits(self, checks: _Checks, logits: torch.Tensor, name: str, timesteps) -> None:
        """The denoiser's output must be finite; the error names the timesteps of the examples with NaN or inf.

        The check is one reduction: the sum is non-finite whenever a value is (NaN propagates, inf stays inf or meets
        -inf in a NaN), and a sum that merely overflows is settled exactly when it fails. On the CPU this costs about
        1/40 of `torch.isfinite(logits).all()`, which runs as several kernels and allocates a mask
        (`scripts/benchmarks/README.md`).
        """
        logits = logits.detach()

        def fail():
            finite = torch.isfinite(logits)
            if finite.all():
                return  # the sum overflowed: every value is finite
            bad = ~finite.flatten(1).all(dim=1)
            examples = bad.nonzero().flatten().tolist()
            count = int((~finite).sum())
            if torch.is_tensor(timesteps) and timesteps.dim() > 0:
                where = f"timesteps {_short_list(sorted(set(timesteps[bad.to(timesteps.device)].tolist())))}"
            else:
                where = f"timestep {int(timesteps)}"
            raise ValueError(
                f"{name} holds {count} non-finite values (NaN or inf) at {where} (examples {_short_list(examples)}); "
                f"the denoiser's logits must be finite"
            )

        accumulate = torch.float64 if logits.dtype == torch.float64 else torch.float32
        checks.add(torch.isfinite(logits.sum(dtype=accumulate)), fail)

    def _check_prev_timesteps(self, checks: _Checks, prev_t, t, like: torch.Tensor, name: str, t_name: str):
        """`prev_t` (an integer or a `(B,)` integer tensor) must lie in `[-1, t)`; returns it like `_check_timesteps`."""
        device = like.device
        prev_t = self._check_timesteps(checks, prev_t, name, low=-1, device=device)
        self._check_batch(prev_t, like, name)
        if torch.is_tensor(t) or torch.is_tensor(prev_t):
            t_, prev_ = torch.as_tensor(t, device=device), torch.as_tensor(prev_t, device=device)

            def fail():
                raise ValueError(f"{name} must lie in [-1, {t_name}), got {name}={_preview(prev_)} for "
                                 f"{t_name}={_preview(t_)}")

            checks.add((prev_ < t_).all(), fail)
        elif prev_t >= t:
            raise ValueError(f"{name} must lie in [-1, {t_name}), got {name}={prev_t} for {t_name}={t}")
        return prev_t

    @staticmethod
    def _check_batch(t: Union[int, torch.Tensor], x: torch.Tensor, name: str = "timesteps") -> None:
        if torch.is_tensor(t) and t.dim() > 0 and t.shape != (x.shape[0],):
            raise ValueError(f"{name} must be a scalar or have shape ({x.shape[0]},), got shape {tuple(t.shape)}")

    # ------------------------------------------------------------------ tables

    def _gather(
        self, name: str, t: Union[int, torch.Tensor], like: torch.Tensor, offset: int = 0, dtype: torch.dtype = None
    ) -> torch.Tensor:
        """Table values at timesteps `t`, shaped to broadcast against `like` (batch at dim 0), on its device.

        The tables are float64 for float64 inputs (or `dtype=torch.float64`) and float32 otherwise. `t` must be
        validated: a negative index would read the end of the table.
        """
        dtype = dtype or (torch.float64 if like.dtype == torch.float64 else torch.float32)
        key = (name, like.device, dtype)
        if key not in self._table_cache:
            self._table_cache[key] = torch.tensor(self._tables64[name], dtype=dtype, device=like.device)
        table = self._table_cache[key]
        if not torch.is_tensor(t):
            return table[int(t) + offset]
        values = table[t.to(table.device).long() + offset]
        if values.dim() == 0:
            return values
        return values.view(-1, *([1] * (like.dim() - 1)))

    def _loss_columns(self, t: torch.Tensor, dtype: torch.dtype, device, prev_t: Optional[torch.Tensor] = None) -> dict:
        """The per-step scalars of `_loss_table` at validated timesteps `t` `(B,)` for the steps to `prev_t` (default
        `t - 1`), each `(B, 1)` in `dtype`. Training steps are one gather from the cached table; a skipped step
        (`prev_t < t - 1`) costs one host copy of `t` and `prev_t` and is tabulated in float64 on the host."""
        key = ("_loss_table", device, dtype)
        if prev_t is None:
            if key not in self._table_cache:
                self._table_cache[key] = torch.tensor(self._loss_table64, dtype=dtype, device=device)
            rows = self._table_cache[key][t.to(device).long()]
        else:
            t_host, prev_host = t.cpu().numpy(), prev_t.cpu().numpy()
            table = self._loss_table64[t_host]
            skipped = prev_host != t_host - 1
            if skipped.any():
                table[skipped] = _loss_table(self.num_classes, self._tables64, t_host[skipped], prev_host[skipped])
            rows = torch.tensor(table, dtype=dtype, device=device)
        return {name: rows[:, i : i + 1] for i, name in enumerate(_LOSS_COLUMNS)}

    # ------------------------------------------------------------------ log-space primitives

    def index_to_log_onehot(self, x: torch.LongTensor) -> torch.FloatTensor:
        """
        Turn class indices into log one-hot vectors: the log-probabilities of a distribution certain of each index.

        This is the form in which known data enters the scheduler: the clean sample x_0 of the loss terms, the
        current sample x_t of `step`, and the prediction of x_0 at positions a pipeline keeps fixed (with it in place
        of the denoiser's logits there, `step` draws from the forward process' own posterior q(x_prev | x_t, x_0)).

        Args:
            x (`torch.LongTensor` of shape `(batch_size, ...)`):
                Class indices in `[0, num_classes)`.

        Returns:
            `torch.FloatTensor` of shape `(batch_size, num_classes, ...)`:
                0 at the class of each index and `LOG_ZERO` (log 1e-30, a finite stand-in for log 0) elsewhere, on the
                device of `x`, in float32.

        Raises:
            ValueError: If `x` is not an integer tensor or holds an index outside `[0, num_classes)`.
        """
        checks = _Checks()
        self._check_indices(checks, x, "x")
        checks.run()
        return self._log_onehot(x)

    def _log_onehot(self, x: torch.LongTensor) -> torch.FloatTensor:
        onehot = F.one_hot(x.long(), self.num_classes).movedim(-1, 1)
        return torch.where(onehot.bool(), 0.0, LOG_ZERO).float()

    def q_pred(self, log_x_start: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        """log q(x_t | x_0) = log(alpha_bar_t x_0 + (1 - alpha_bar_t) / K) for `t` in `[-1, T)`; `t = -1` returns
        `log_x_start`. `t` is an integer or a `(B,)` integer tensor."""
        checks = _Checks()
        self._check_log_probs(checks, log_x_start, "log_x_start")
        t = self._check_timesteps(checks, t, "t", low=-1, device=log_x_start.device)
        self._check_batch(t, log_x_start, "t")
        checks.run()
        return self._q_pred(log_x_start, t)

    def _q_pred(self, log_x_start: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        return torch.logaddexp(
            log_x_start + self._gather("log_cumprod_alpha", t, log_x_start, offset=1),
            self._gather("log_1_min_cumprod_alpha", t, log_x_start, offset=1) - math.log(self.num_classes),
        )

    def q_pred_one_timestep(self, log_x_t: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        """log q(x_t | x_{t-1}) as a function of x_{t-1}, for the observed x_t and `t` in `[0, T)`.

        It takes x_t, not x_{t-1}: Cat(x_t | alpha_t x_{t-1} + (1 - alpha_t) / K) is symmetric in x_t and x_{t-1},
        so mixing the one-hot x_t with the uniform distribution gives, at class k, the likelihood of x_{t-1} = k.
        """
        checks = _Checks()
        self._check_log_probs(checks, log_x_t, "log_x_t")
        t = self._check_timesteps(checks, t, "t", device=log_x_t.device)
        self._check_batch(t, log_x_t, "t")
        checks.run()
        return self._q_pred_one_timestep(log_x_t, t)

    def _q_pred_one_timestep(self, log_x_t: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        return torch.logaddexp(
            log_x_t + self._gather("log_alpha", t, log_x_t),
            self._gather("log_1_min_alpha", t, log_x_t) - math.log(self.num_classes),
        )

    def _log_transition(self, log_x_t: torch.FloatTensor, t, prev_t) -> torch.FloatTensor:
        """log q(x_t | x_prev_t) as a function of x_prev_t, for any prev_t < t (the symmetry above, over a jump).

        alpha_bar_t / alpha_bar_prev_t and its complement come from the float64 tables: the ratio of two nearby
        float32 values would lose most of its digits.
        """
        f64 = torch.float64
        log_alpha_bar = self._gather("log_cumprod_alpha", t, log_x_t, 1, f64) - self._gather(
            "log_cumprod_alpha", prev_t, log_x_t, 1, f64
        )
        log_1_min = torch.where(
            log_alpha_bar > -math.log(2), torch.log(-torch.expm1(log_alpha_bar)), torch.log1p(-torch.exp(log_alpha_bar))
        )
        return torch.logaddexp(
            log_x_t + log_alpha_bar.to(log_x_t.dtype), log_1_min.to(log_x_t.dtype) - math.log(self.num_classes)
        )

    def q_posterior(
        self,
        log_x_start: torch.FloatTensor,
        log_x_t: torch.FloatTensor,
        t: Union[int, torch.Tensor],
        prev_t: Optional[Union[int, torch.Tensor]] = None,
    ) -> torch.FloatTensor:
        """
        log q(x_prev_t | x_t, x_0), normalised over the classes.

        Args:
            log_x_start (`torch.FloatTensor` of shape `(B, K, ...)`):
                log x_0: a log one-hot vector, or the log-probabilities predicted by a denoiser (then this is the
                reverse process p(x_prev_t | x_t), the paper's x_0-parametrisation).
            log_x_t (`torch.FloatTensor` of shape `(B, K, ...)`):
                The current sample x_t as a log one-hot vector.
            t (`int` or `torch.LongTensor` of shape `(B,)`):
                The current timestep index, in `[0, T)`.
            prev_t (`int` or `torch.LongTensor` of shape `(B,)`, *optional*):
                The timestep index to go back to, any value in `[-1, t)`; defaults to `t - 1`. Skipping is exact:
                q(x_prev_t | x_t, x_0) is proportional to q(x_t | x_prev_t) q(x_prev_t | x_0).

        Raises:
            ValueError: If a tensor has the wrong shape or holds NaN or +inf, or a timestep is out of range.
        """
        checks = _Checks()
        self._check_log_probs(checks, log_x_start, "log_x_start")
        self._check_log_probs(checks, log_x_t, "log_x_t")
        if log_x_start.shape != log_x_t.shape:
            raise ValueError(
                f"log_x_start shape {tuple(log_x_start.shape)} does not match log_x_t shape {tuple(log_x_t.shape)}"
            )
        device = log_x_t.device
        t = self._check_timesteps(checks, t, "t", device=device)
        self._check_batch(t, log_x_t, "t")
        if prev_t is not None:
            prev_t = self._check_prev_timesteps(checks, prev_t, t, log_x_t, "prev_t", "t")
        checks.run()
        return self._q_posterior(log_x_start, log_x_t, t, prev_t)

    def _q_posterior(self, log_x_start, log_x_t, t, prev_t=None) -> torch.FloatTensor:
        if prev_t is None:
            log_prev_given_start = self._q_pred(log_x_start, t - 1)
            log_t_given_prev = self._q_pred_one_timestep(log_x_t, t)
        else:
            log_prev_given_start = self._q_pred(log_x_start, prev_t)
            log_t_given_prev = self._log_transition(log_x_t, t, prev_t)
        # Both factors are fresh tensors that autograd does not save (logaddexp keeps its inputs), so the product
        # can be formed in place; the normalisation too when no gradient is being recorded (logsumexp keeps its input).
        fresh, other = log_prev_given_start, log_t_given_prev
        if fresh.shape == other.shape and fresh.dtype == torch.result_type(fresh, other):
            unnormed = fresh.add_(other)
        else:
            unnormed = fresh + other
        del fresh, other, log_prev_given_start, log_t_given_prev
        if torch.is_grad_enabled() and unnormed.requires_grad:
            return unnormed - torch.logsumexp(unnormed, dim=1, keepdim=True)
        return unnormed.sub_(torch.logsumexp(unnormed, dim=1, keepdim=True))

    # ------------------------------------------------------------------ training

    def sample_prior(self, shape: Sequence[int], generator: Optional[torch.Generator] = None, device=None) -> torch.LongTensor:
        """Draw x_T of shape `shape` (positive integers) from the uniform distribution over the K classes
        (q(x_T | x_0) is uniform: alpha_bar_T = 0)."""
        if isinstance(shape, int) or not all(_is_integer(size) and size >= 1 for size in shape):
            raise ValueError(f"shape must be a sequence of positive integers, got {shape!r}")
        device = device if device is not None else (generator.device if generator is not None else "cpu")
        gen_device = generator.device if generator is not None else device
        return torch.randint(self.num_classes, tuple(shape), generator=generator, device=gen_device).to(device)

    def sample_categorical(self, log_probs: torch.FloatTensor, generator: Optional[torch.Generator] = None) -> torch.LongTensor:
        """Draw class indices `(B, ...)` from log-probabilities `(B, K, ...)` with the Gumbel-max trick."""
        checks = _Checks()
        self._check_log_probs(checks, log_probs, "log_probs")
        checks.run()
        return self._sample_categorical(log_probs, generator)

    def _sample_categorical(self, log_probs: torch.FloatTensor, generator: Optional[torch.Generator] = None) -> torch.LongTensor:
        return self._gumbel_like(log_probs, generator).add_(log_probs).argmax(dim=1)

    def add_noise(
        self, x_start: torch.LongTensor, timesteps: torch.LongTensor, generator: Optional[torch.Generator] = None
    ) -> torch.LongTensor:
        """Draw x_t ~ q(x_t | x_0) for each example; `x_start` holds indices `(B, ...)`, `timesteps` in `[0, T)` has
        shape `(B,)` (or is one integer for all).

        Each position keeps x_0 with probability alpha_bar_t and otherwise takes a uniform class: O(B L) work, whatever K
        is. (Earlier versions drew a Gumbel-max over the K classes: the distribution is the same, the samples that a seeded
        generator gives are not.)"""
        checks = _Checks()
        self._check_indices(checks, x_start, "x_start")
        timesteps = self._check_timesteps(checks, timesteps, "timesteps", device=x_start.device)
        self._check_batch(timesteps, x_start)
        checks.run()
        # q(x_t | x_0) = alpha_bar_t onehot(x_0) + (1 - alpha_bar_t) / K: keep x_0 with probability alpha_bar_t, else
        # draw a uniform class (which may be x_0 again). O(B L) work and memory, against a (B, K, L) Gumbel draw before;
        # the distribution is the same, but a seeded draw differs from that of versions before this one.
        alpha_bar = self._gather("log_cumprod_alpha", timesteps, x_start, offset=1, dtype=torch.float64).exp()
        gen_device = generator.device if generator is not None else x_start.device
        uniform = torch.rand(x_start.shape, generator=generator, device=gen_device, dtype=torch.float64)
        noise = torch.randint(self.num_classes, x_start.shape, generator=generator, device=gen_device)
        keep = uniform.to(x_start.device) < alpha_bar
        return torch.where(keep, x_start.long(), noise.to(x_start.device))

    def _check_loss_inputs(self, model_output, x_start, x_t, timesteps, prev_timesteps=None):
        """Validate the arguments of the loss terms (one host sync); returns the timesteps and the previous timesteps
        (None: t - 1) as `(B,)` tensors on x_start's device."""
        self._check_log_probs(None, model_output, "model_output")
        checks = _Checks()
        self._check_indices(checks, x_start, "x_start")
        if model_output.shape[2:] != x_start.shape[1:] or model_output.shape[0] != x_start.shape[0]:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} does not match x_start shape {tuple(x_start.shape)}")
        if not torch.is_tensor(x_t) or x_t.shape != x_start.shape:
            shape = tuple(x_t.shape) if torch.is_tensor(x_t) else type(x_t).__name__
            raise ValueError(f"x_t shape {shape} does not match x_start shape {tuple(x_start.shape)}")
        self._check_indices(checks, x_t, "x_t")
        timesteps = self._check_timesteps(checks, timesteps, "timesteps", device=x_start.device)
        self._check_batch(timesteps, x_start)
        if prev_timesteps is not None:
            prev_timesteps = self._check_prev_timesteps(checks, prev_timesteps, timesteps, x_start, "prev_timesteps",
                                                        "timesteps")
        self._check_finite_logits(checks, model_output, "model_output", timesteps)
        checks.run()
        batch = x_start.shape[0]
        timesteps = torch.as_tensor(timesteps, device=x_start.device).expand(batch)
        if prev_timesteps is not None:
            prev_timesteps = torch.as_tensor(prev_timesteps, device=x_start.device).expand(batch)
        return timesteps, prev_timesteps

    def compute_loss(
        self,
        model_output: torch.FloatTensor,
        x_start: torch.LongTensor,
        x_t: torch.LongTensor,
        timesteps: torch.LongTensor,
        prev_timesteps: Optional[torch.LongTensor] = None,
    ) -> torch.FloatTensor:
        """
        The per-example loss term L_t in nats, summed over all non-batch dimensions.

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`): the denoiser's logits over x_0, finite.
            x_start (`torch.LongTensor` of shape `(B, ...)`): the clean data x_0.
            x_t (`torch.LongTensor` of shape `(B, ...)`): the noisy sample at `timesteps`, from `add_noise`.
            timesteps (`torch.LongTensor` of shape `(B,)`): timestep indices in `[0, T)`.
            prev_timesteps (`torch.LongTensor` of shape `(B,)` or `int`, *optional*): the timestep the reverse step
                goes to, in `[-1, timesteps)`; defaults to `timesteps - 1` (the training steps). A sampler that skips
                timesteps (`set_timesteps(S)`) takes the steps from each of its timesteps to the next, and its own
                negative ELBO is the sum of these terms (`hf_multinomial.evaluation.negative_elbo`).

        Returns:
            `torch.FloatTensor` of shape `(B,)`: KL(q(x_prev | x_t, x_0) || p(x_prev | x_t)) where prev_timesteps >= 0
            and the decoder's negative log-likelihood -log p(x_0 | x_t) where prev_timesteps = -1 (t = 0 by default).

        Raises:
            ValueError: If a shape does not match, an id or timestep is out of range (`prev_timesteps` outside
                `[-1, timesteps)`), or `model_output` holds NaN or inf (the message names the timesteps).
        """
        timesteps, prev_timesteps = self._check_loss_inputs(model_output, x_start, x_t, timesteps, prev_timesteps)
        return self._class_id_loss(model_output, x_start, x_t, timesteps, prev_timesteps)[0]

    def compute_loss_terms(
        self,
        model_output: torch.FloatTensor,
        x_start: torch.LongTensor,
        x_t: torch.LongTensor,
        timesteps: torch.LongTensor,
        prev_timesteps: Optional[torch.LongTensor] = None,
    ) -> "MultinomialLossOutput":
        """
        Every loss term of one batch from one validation of the inputs (one host sync): `compute_loss`,
        `jump_to_start_nll` and `prior_kl`, as a training step needs them. The K-wide work is shared too.

        Args: as for `compute_loss`; it raises as `compute_loss` does.

        Returns:
            [`MultinomialLossOutput`] with `loss`, `jump_nll` and `prior_kl`, each `(B,)` in nats.
        """
        timesteps, prev_timesteps = self._check_loss_inputs(model_output, x_start, x_t, timesteps, prev_timesteps)
        loss, jump_nll = self._class_id_loss(model_output, x_start, x_t, timesteps, prev_timesteps)
        return MultinomialLossOutput(loss=loss, jump_nll=jump_nll, prior_kl=self._prior_kl(x_start))

    def _class_id_loss(self, model_output, x_start, x_t, timesteps, prev_timesteps=None, jump: bool = False):
        """
        `(compute_loss, jump_to_start_nll)` per example from reductions over K only (with `jump`, the KL is skipped
        and the first entry is the jump term too).

        Write x0_hat = softmax(z), l_k = log x0_hat_k = z_k - lse, and for a step from t to prev >= 0 (c =
        alpha_bar_prev, u = (1 - c) / K, a = alpha_bar_t / alpha_bar_prev, v = (1 - a) / K, r = c / u,
        h(l) = log(1 + r e^l)):
        - the model's reverse step is p(k) ~ (a [k = x_t] + v)(c x0_hat_k + u) = u v (1 + (a/v) [k = x_t]) e^{h(l_k)},
          with normaliser u v Z_m, Z_m = K + r + (a / v) e^{h(l_{x_t})} = (K + r + a/v) + (a/v) r e^{l_{x_t}};
        - the true posterior q is the same with x0_hat = onehot(x_0): it takes three values (at x_0, at x_t, and w
          elsewhere; two when x_t == x_0), tabulated per step, and its normaliser Z_q is Z_m at l = log onehot(x_0);
        - KL(q || p) = sum_k q_k (h(0) [k = x_0] - h(l_k)) - log Z_q + log Z_m (the factor (1 + (a/v)[k = x_t])
          cancels), where sum_k q_k h(l_k) = q_{x_0} h(l_{x_0}) + q_{x_t} h(l_{x_t}) + w (H - h(l_{x_0}) - h(l_{x_t}))
          needs the one K-wide sum H = sum_k h(l_k) (x_t's terms once when x_t == x_0).
        The jump to the data (`jump`, and the decoder term where prev = -1), with rho = log(alpha_bar_t K / (1 -
        alpha_bar_t)): -log p(x_0 | x_t) = -l_{x_0} + log(1 + e^{rho + l_{x_t}}) - [x_t == x_0] log(1 + e^rho).
        The pieces that cancel when the model is exact (h(0) - h(l_{x_0}), log Z_m - log Z_q, the two softplus of the
        jump) are computed by the same float operations, so an exact model gets a loss of 0 to rounding of tiny terms.
        K-wide work: one `_ClassSums` (float32 for float32 logits); everything else is `(B, positions)`.
        """
        dtype = torch.float64 if model_output.dtype == torch.float64 else torch.float32
        batch = model_output.shape[0]
        logits = model_output.to(dtype).reshape(batch, self.num_classes, -1)
        x0, xt = x_start.reshape(batch, -1).long(), x_t.reshape(batch, -1).long()
        cols = self._loss_columns(timesteps, dtype, logits.device, prev_timesteps)
        need_kl = not jump and self.config.num_train_timesteps > 1
        lse, z0, zt, sums = _ClassSums.apply(logits, x0, xt, cols["log_r"] if need_kl else None)
        l0, lt = z0 - lse, zt - lse
        same = x0 == xt
        rho = cols["jump_rho"]
        nll = _softplus(rho + lt) - l0 - torch.where(same, _softplus(rho), torch.zeros_like(rho))
        jump_nll = nll.sum(dim=1)
        if not need_kl:
            return jump_nll, jump_nll

        log_r, log_av, lkrav = cols["log_r"], cols["log_av"], cols["lkrav"]
        h0, ht = _softplus(log_r + l0), _softplus(log_r + lt)
        gap0 = _softplus(log_r) - h0  # h(0) - h(l_{x_0})
        log_zm = torch.logaddexp(lkrav, log_av + log_r + lt)
        kl_ne = cols["q0_ne"] * gap0 - cols["qt_ne"] * ht - cols["w_ne"] * (sums - h0 - ht) + (log_zm - lkrav)
        log_zq_eq = torch.logaddexp(lkrav, log_av + log_r)
        kl_eq = cols["q0_eq"] * gap0 - cols["w_eq"] * (sums - h0) + (log_zm - log_zq_eq)
        kl = torch.where(same, kl_eq, kl_ne)
        to_data = (timesteps == 0) if prev_timesteps is None else (prev_timesteps == -1)
        return torch.where(to_data.view(-1, 1), nll, kl).sum(dim=1), jump_nll

    def jump_to_start_nll(
        self,
        model_output: torch.FloatTensor,
        x_start: torch.LongTensor,
        x_t: torch.LongTensor,
        timesteps: torch.LongTensor,
    ) -> torch.FloatTensor:
        """
        -log p(x_0 | x_t) in nats per example for the reverse step that jumps from `timesteps` straight to the data
        (`prev_t = -1`), whose distribution over x_0 is proportional to x0_hat * q(x_t | x_0).

        At t = 0 this is the decoder term of `compute_loss`. At any t it is minimised by the same prediction x0_hat as
        the ELBO when the reverse process is the exact time reversal (then x0_hat * q(x_t | x_0) is the true
        q(x_0 | x_t)), so it can be added to the ELBO as a low-variance auxiliary loss without changing its optimum. A
        plain cross-entropy of x0_hat does not have this property: it double-counts the evidence of x_t.

        Args: as for `compute_loss`; it raises as `compute_loss` does.
        """
        timesteps, _ = self._check_loss_inputs(model_output, x_start, x_t, timesteps)
        return self._class_id_loss(model_output, x_start, x_t, timesteps, jump=True)[0]

    def prior_kl(self, x_start: torch.LongTensor) -> torch.FloatTensor:
        """KL(q(x_T | x_0) || uniform) per example, in nats."""
        checks = _Checks()
        self._check_indices(checks, x_start, "x_start")
        checks.run()
        return self._prior_kl(x_start)

    def _prior_kl(self, x_start: torch.LongTensor) -> torch.FloatTensor:
        # The same at every position whatever x_0 is (closed form in __init__): no K-wide work.
        value = math.prod(x_start.shape[1:]) * self._prior_kl_per_position
        return torch.full((x_start.shape[0],), value, dtype=torch.float32, device=x_start.device)

    # ------------------------------------------------------------------ inference

    def _sample_posterior_class_ids(self, log_x_start, sample, t: int, prev_t: int, generator) -> torch.LongTensor:
        """
        Draw x_prev_t ~ p(x_prev_t | x_t) for class ids `sample` and the log-probabilities `log_x_start` of x0_hat.

        p(k) ~ q(x_t | x_prev = k) q(x_prev = k | x0_hat), with (a = alpha_bar_t / alpha_bar_prev, v = (1 - a) / K,
        c = alpha_bar_prev, u = (1 - c) / K) q(x_t | k) = v (1 + (a / v) [k = x_t]) and c x0_hat_k + u =
        u (1 + r x0_hat_k), r = c / u. The Gumbel-max draw argmax_k(log p(k) + G_k) ignores constants, so the score is
        log(1 + r x0_hat_k) + log(1 + a / v) [k = x_t] (log x0_hat_k itself for prev_t = -1), with no normalisation
        and no one-hot x_t: the same distribution as the general `q_posterior` path, in one K-wide temporary besides
        the Gumbel noise. The per-timestep scalars are float64 on the host.
        """
        log_k = math.log(self.num_classes)
        lcab = self._tables64["log_cumprod_alpha"]
        log_a = lcab[t + 1] - lcab[prev_t + 1]
        with np.errstate(divide="ignore"):
            log_bonus = float(np.logaddexp(0.0, log_a - float(log_1_min_a(log_a)) + log_k))  # log(1 + a / v)
        gumbel = self._gumbel_like(log_x_start, generator)
        if prev_t == -1:
            score = gumbel.add_(log_x_start)
        else:
            log_r = min(lcab[prev_t + 1] - float(self._tables64["log_1_min_cumprod_alpha"][prev_t + 1]) + log_k, _MAX_LOG_RATIO)
            score = (log_x_start + log_r).exp_().log1p_().add_(gumbel)
            del gumbel
        index = sample.long().unsqueeze(1)
        score.scatter_add_(1, index, torch.full(index.shape, log_bonus, dtype=score.dtype, device=score.device))
        return score.argmax(dim=1)

    @staticmethod
    def _gumbel_like(log_probs: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """Standard Gumbel noise of the shape and dtype of `log_probs`, from the uniforms `_sample_categorical` draws."""
        gen_device = generator.device if generator is not None else log_probs.device
        uniform = torch.rand(log_probs.shape, generator=generator, device=gen_device, dtype=log_probs.dtype)
        uniform = uniform.to(log_probs.device).clamp_(min=torch.finfo(log_probs.dtype).tiny)
        return uniform.log_().neg_().log_().neg_()

    def set_timesteps(self, num_inference_steps: int, device: Union[str, torch.device] = None):
        """
        Sets the discrete timesteps used for sampling (to be run before inference): `num_inference_steps` integers
        evenly spaced from T - 1 down to 0.

        Args:
            num_inference_steps (`int`):
                How many denoiser calls sampling takes, in `[1, T]`.
            device (`str` or `torch.device`, *optional*):
                The device to put `self.timesteps` on.

        Raises:
            ValueError: If `num_inference_steps` is not an integer in `[1, T]` (a bool or a float such as 2.5 or 2.0
                is refused, not rounded).
        """
        steps = self.inference_timesteps(num_inference_steps)
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = torch.from_numpy(steps).to(device)

    def inference_timesteps(self, num_inference_steps: int) -> np.ndarray:
        """
        The timesteps `set_timesteps(num_inference_steps)` sets, as a numpy array, without changing the scheduler:
        `num_inference_steps` distinct integers evenly spaced from T - 1 down to 0 (T - 1 alone for one step). The
        reverse steps go from each to the next, and from the last to the data (-1).

        Raises:
            ValueError: If `num_inference_steps` is not an integer in `[1, T]`.
        """
        T = self.config.num_train_timesteps
        if not _is_integer(num_inference_steps) or not 1 <= num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be an integer in [1, {T}], got {num_inference_steps!r}")
        return np.round(np.linspace(T - 1, 0, int(num_inference_steps))).astype(np.int64)

    def _previous_timesteps(self) -> dict:
        """`{t: previous t}` over `self.timesteps`, rebuilt (one host copy) whenever `self.timesteps` is replaced."""
        if self._previous_cache is None or self._previous_cache[0] is not self.timesteps:
            steps = [int(t) for t in self.timesteps.tolist()]
            previous = {}
            for t, prev in zip(steps, steps[1:] + [-1]):
                previous.setdefault(t, prev)
            self._previous_cache = (self.timesteps, previous)
        return self._previous_cache[1]

    def previous_timestep(self, timestep: Union[int, torch.Tensor]) -> int:
        """
        The timestep that follows `timestep` in `self.timesteps`, or -1 (the clean data) after the last one.

        Args:
            timestep (`int`):
                One of `self.timesteps`.

        Returns:
            `int`: the previous timestep of the reverse process.
        """
        timestep = self._check_scalar_timestep(timestep)
        previous = self._previous_timesteps().get(timestep)
        if previous is None:
            raise ValueError(f"timestep {timestep} is not in the scheduler's timesteps; call set_timesteps first")
        return previous

    def step(
        self,
        model_output: torch.FloatTensor,
        timestep: Union[int, torch.Tensor],
        sample: torch.LongTensor,
        generator: Optional[torch.Generator] = None,
        return_dict: bool = True,
        temperature: float = 1.0,
    ) -> Union[MultinomialSchedulerOutput, Tuple]:
        """
        Draw the sample at the next timestep of `self.timesteps` from p(x_prev | x_t).

        The draw is a Gumbel-max over the K classes of an unnormalised log posterior built from the class ids of
        `sample` (no one-hot x_t, no normalisation): besides `pred_original_sample` it allocates the Gumbel noise and one
        more `(B, K, ...)` tensor.

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`):
                The denoiser's logits over x_0; they must be finite.
            timestep (`int`):
                The current timestep, one of `self.timesteps` (an integer or a one-element integer tensor).
            sample (`torch.LongTensor` of shape `(B, ...)`):
                The current sample x_t as class indices.
            generator (`torch.Generator`, *optional*):
                A random number generator for the draw.
            return_dict (`bool`, defaults to `True`):
                Whether or not to return a [`MultinomialSchedulerOutput`] or `tuple`.
            temperature (`float`, defaults to 1.0):
                Divides the logits before x0_hat = softmax(logits / temperature): below 1 sharpens the prediction of
                x_0, above 1 flattens it. Any value other than 1 leaves the model's reverse process (and its bound).

        Returns:
            [`MultinomialSchedulerOutput`] or `tuple`:
                If return_dict is `True`, [`MultinomialSchedulerOutput`] is returned, otherwise a tuple
                `(prev_sample, pred_original_sample)`.

        Raises:
            ValueError: If `timestep` is not one of `self.timesteps` (a fractional one is refused, not truncated), a
                shape does not match, `sample` holds an id out of range, `model_output` holds NaN or inf, or
                `temperature` is not a positive finite number.
        """
        _check_positive_real("temperature", temperature)
        timestep = self._check_scalar_timestep(timestep)
        prev_t = self.previous_timestep(timestep)
        self._check_step_inputs(model_output, timestep, sample)

        log_x_start = F.log_softmax(model_output if temperature == 1.0 else model_output / temperature, dim=1)
        prev_sample = self._sample_posterior_class_ids(log_x_start, sample, timestep, prev_t, generator)

        if not return_dict:
            return (prev_sample, log_x_start)
        return MultinomialSchedulerOutput(prev_sample=prev_sample, pred_original_sample=log_x_start)

    # ------------------------------------------------------------------ corrector

    def _loo_log_conditional(self, logits: torch.Tensor, t: int, sample: torch.LongTensor) -> torch.Tensor:
        """
        log p_t(x^l = k | x^{-l}) `(B, K, N)` for logits `(B, K, N)` over x_0 at the sample `(B, N)` at index t.

        Given x_0^l, x_t^l is independent of the other positions, so p_t(x^l | x^{-l}) = sum_j p(x_0^l = j | x^{-l})
        q(x^l | x_0^l = j) = Cat(x^l | alpha_bar_t x0_loo + (1 - alpha_bar_t) / K), where x0_loo = p(x_0^l | x^{-l})
        is the leave-one-out prediction. In this scheduler's parametrisation the denoiser's x0_hat already is x0_loo:
        the reverse step p(x_prev | x_t) ~ q(x_t | x_prev) (c x0_hat + u) counts the evidence of x_t^l through
        q(x_t | x_prev), and the true reversal has that form exactly with x0_hat = p(x_0^l | x_t^{-l}) (the model that
        predicts the data marginal is the exact reversal for independent positions). A denoiser that predicts the full
        posterior p(x_0^l | x_t), as in arXiv 2605.22765, would need the evidence of x^l divided out first (their eq.
        13); the minimiser of `compute_loss` and `jump_to_start_nll` does not.
        """
        log_keep = float(self._tables64["log_cumprod_alpha"][t + 1])
        log_noise = float(self._tables64["log_1_min_cumprod_alpha"][t + 1]) - math.log(self.num_classes)
        log_x0 = F.log_softmax(logits, dim=1)
        return torch.logaddexp(log_x0 + log_keep, torch.full_like(log_x0, log_noise))

    def loo_log_conditional(
        self, model_output: torch.FloatTensor, timestep: Union[int, torch.Tensor], sample: torch.LongTensor
    ) -> torch.FloatTensor:
        """
        The one-coordinate conditionals log p_t(x^l = k | x^{-l}) of the marginal at `timestep`, from the denoiser's
        logits at `sample`: alpha_bar_t x0_hat + (1 - alpha_bar_t) / K, exact when the denoiser is the minimiser of
        `compute_loss` (see `_loo_log_conditional`).

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`): the denoiser's logits at `sample`, finite.
            timestep (`int`): the timestep index of `sample`, in `[0, T)`.
            sample (`torch.LongTensor` of shape `(B, ...)`): class ids.

        Returns:
            `torch.FloatTensor` of shape `(B, K, ...)`, normalised over the classes.
        """
        timestep, logits, ids = self._check_corrector_inputs(model_output, timestep, sample)
        return self._loo_log_conditional(logits, timestep, ids).view_as(model_output)

    @staticmethod
    def check_sampler_options(temperature: float = 1.0, selection_tau: float = 1.0) -> None:
        """Raise a ValueError naming the value unless `temperature` (of `step`) and `selection_tau` (of the corrector)
        are positive finite numbers: for a pipeline, before it starts sampling."""
        _check_positive_real("temperature", temperature)
        _check_positive_real("selection_tau", selection_tau)

    def _check_step_inputs(self, model_output, timestep: int, sample, resample_mask=None) -> None:
        """The tensors of `step` and of the corrector (one host sync): logits `(B, K, ...)` that are finite, class ids of
        the matching shape `(B, ...)`, and a bool `resample_mask` of the sample's shape. `timestep`, already
        validated, names the step in an error."""
        self._check_log_probs(None, model_output, "model_output")
        checks = _Checks()
        self._check_indices(checks, sample, "sample")
        if model_output.shape[0] != sample.shape[0] or model_output.shape[2:] != sample.shape[1:]:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} does not match sample shape {tuple(sample.shape)}")
        if resample_mask is not None and (not torch.is_tensor(resample_mask) or resample_mask.dtype != torch.bool
                                          or resample_mask.shape != sample.shape):
            got = f"{resample_mask.dtype} tensor of shape {tuple(resample_mask.shape)}" if torch.is_tensor(
                resample_mask) else type(resample_mask).__name__
            raise ValueError(f"resample_mask must be a bool tensor of the sample's shape {tuple(sample.shape)}, got {got}")
        self._check_finite_logits(checks, model_output, "model_output", timestep)
        checks.run()

    def _check_corrector_inputs(self, model_output, timestep, sample, resample_mask=None):
        """`_check_step_inputs` for any timestep in [0, T); returns it with the logits `(B, K, N)` (float32 or
        float64) and the ids `(B, N)` flattened over the positions."""
        timestep = self._check_scalar_timestep(timestep)
        self._check_step_inputs(model_output, timestep, sample, resample_mask)
        batch = sample.shape[0]
        logits = model_output.reshape(batch, self.num_classes, -1)
        if logits.dtype not in (torch.float32, torch.float64):
            logits = logits.float()
        return timestep, logits, sample.reshape(batch, -1).long()

    def _selection_log_weights(self, log_conditional, selection_tau: float, resample_mask) -> torch.Tensor:
        """log w_l(x) `(B, N)`: the least confident positions first, w = softmax_l(-max_k log p_t(x^l = k | x^{-l})
        / tau) over the positions that may be resampled (-inf elsewhere)."""
        scores = log_conditional.amax(dim=1).neg_().div_(selection_tau)
        if resample_mask is not None:
            scores = scores.masked_fill(~resample_mask.reshape(scores.shape), -math.inf)
        return F.log_softmax(scores, dim=1)

    def step_correct(
        self,
        model_output: torch.FloatTensor,
        timestep: Union[int, torch.Tensor],
        sample: torch.LongTensor,
        generator: Optional[torch.Generator] = None,
        num_positions: int = 1,
        selection_tau: float = 1.0,
        resample_mask: Optional[torch.BoolTensor] = None,
        return_dict: bool = True,
    ) -> Union[MultinomialCorrectorOutput, Tuple]:
        """
        Propose one corrector move at `timestep`: choose the least confident positions of `sample` and resample them
        from their one-coordinate conditionals `loo_log_conditional` (the leave-one-out corrector of
        arXiv 2605.22765, for this scheduler's cosine schedule). The denoiser then scores the proposal and
        `accept_correction` settles the move.

        With `num_positions=1` the move is Metropolis-within-Gibbs: position l is chosen with probability w_l(x) (a
        softmax of the positions' uncertainty, `selection_tau` its temperature), x^l is redrawn from
        p_t(x^l | x^{-l}), and the proposal y is accepted with probability min(1, w_l(y) / w_l(x)). Since x and y
        differ at l only, p_t(x) w_l(x) p_t(y^l | x^{-l}) min(1, w_l(y)/w_l(x)) is symmetric in x and y: the move
        leaves the marginal p_t invariant when the denoiser is exact, whichever positions it prefers. With
        `num_positions > 1` the positions are redrawn at once, each from a conditional that holds the others at
        their old values, and every proposal is accepted: one denoiser call then corrects several positions, but the
        move is exact only for data whose positions are independent (then no conditional and no choice of positions
        depends on the state); in general it is a heuristic.

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`): the denoiser's logits at `sample`, finite.
            timestep (`int`): the timestep index of `sample`, in `[0, T)`.
            sample (`torch.LongTensor` of shape `(B, ...)`): class ids.
            generator (`torch.Generator`, *optional*): for the choice of positions and the draws.
            num_positions (`int`, defaults to 1): positions resampled per move.
            selection_tau (`float`, defaults to 1.0): the temperature of the choice; large values choose uniformly.
            resample_mask (`torch.BoolTensor` of shape `(B, ...)`, *optional*): the positions that may be resampled
                (e.g. not those a pipeline keeps fixed); default all.
            return_dict (`bool`, defaults to `True`): return a [`MultinomialCorrectorOutput`] or a tuple.

        Raises:
            ValueError: For a timestep outside `[0, T)`, shapes that do not match, ids out of range, non-finite
                logits, `num_positions` that is not a positive integer at most the number of positions, or a
                `selection_tau` that is not a positive finite number.
        """
        timestep, logits, ids = self._check_corrector_inputs(model_output, timestep, sample, resample_mask)
        if not _is_integer(num_positions) or not 1 <= num_positions <= ids.shape[1]:
            raise ValueError(f"num_positions must be an integer in [1, {ids.shape[1]}] (the positions of a sample), "
                             f"got {num_positions!r}")
        _check_positive_real("selection_tau", selection_tau)
        log_conditional = self._loo_log_conditional(logits, timestep, ids)
        log_weights = self._selection_log_weights(log_conditional, selection_tau, resample_mask)
        has_candidates = torch.isfinite(log_weights).any(dim=1)
        # Examples without candidates get uniform weights, and their proposal is discarded below.
        log_weights = torch.where(has_candidates.unsqueeze(1), log_weights, torch.zeros_like(log_weights))
        keys = self._gumbel_like(log_weights, generator).add_(log_weights)
        if resample_mask is not None:  # never a fixed position, even in a top-k larger than the candidates
            keys = keys.masked_fill(~resample_mask.reshape(keys.shape) & has_candidates.unsqueeze(1), -math.inf)
        positions = keys.topk(num_positions, dim=1).indices  # (B, k): a Gumbel-max draw when k = 1
        chosen = log_conditional.gather(2, positions.unsqueeze(1).expand(-1, self.num_classes, -1))  # (B, K, k)
        redrawn = self._sample_categorical(chosen, generator)
        allowed = torch.isfinite(keys.gather(1, positions)) & has_candidates.unsqueeze(1)
        proposal = ids.scatter(1, positions, torch.where(allowed, redrawn, ids.gather(1, positions)))
        log_selection = log_weights.gather(1, positions).squeeze(1) if num_positions == 1 else None
        proposal = proposal.view_as(sample)
        if not return_dict:
            return (proposal, positions, log_selection, has_candidates)
        return MultinomialCorrectorOutput(proposal=proposal, positions=positions, log_selection=log_selection,
                                          has_candidates=has_candidates)

    def accept_correction(
        self,
        corrector_output: MultinomialCorrectorOutput,
        model_output: torch.FloatTensor,
        timestep: Union[int, torch.Tensor],
        generator: Optional[torch.Generator] = None,
        selection_tau: float = 1.0,
        resample_mask: Optional[torch.BoolTensor] = None,
    ) -> torch.BoolTensor:
        """
        Settle a move of `step_correct` (its output, or its tuple): True where the proposal is accepted. With one position per move, the
        Metropolis-Hastings test u < w_l(y) / w_l(x), w_l(y) from `model_output`, the denoiser's logits at the proposal
        y; with several, every proposal is accepted (see `step_correct`). Examples without candidates are never
        accepted (nothing changed). `selection_tau` and `resample_mask` must be those of the `step_correct` call.

        Returns:
            `torch.BoolTensor` of shape `(B,)`.
        """
        if isinstance(corrector_output, tuple):  # step_correct(..., return_dict=False)
            corrector_output = MultinomialCorrectorOutput(*corrector_output)
        proposal = corrector_output.proposal
        timestep, logits, ids = self._check_corrector_inputs(model_output, timestep, proposal, resample_mask)
        _check_positive_real("selection_tau", selection_tau)
        if corrector_output.log_selection is None:
            return corrector_output.has_candidates.clone()
        log_conditional = self._loo_log_conditional(logits, timestep, ids)
        log_weights = self._selection_log_weights(log_conditional, selection_tau, resample_mask)
        log_ratio = log_weights.gather(1, corrector_output.positions).squeeze(1) - corrector_output.log_selection
        gen_device = generator.device if generator is not None else log_ratio.device
        uniform = torch.rand(log_ratio.shape, generator=generator, device=gen_device, dtype=torch.float64)
        return (uniform.to(log_ratio.device).log() < log_ratio.double()) & corrector_output.has_candidates
