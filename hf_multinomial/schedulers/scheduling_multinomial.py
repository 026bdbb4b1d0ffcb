# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Multinomial diffusion (Hoogeboom et al., 2021) as a diffusers scheduler, computed in log space."""

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

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
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not isinstance(num_train_timesteps, int) or num_train_timesteps < 1:
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
        self._table_cache = {}

        self.num_inference_steps = None
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1, dtype=torch.long)

    def __len__(self):
        return self.config.num_train_timesteps

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    # ------------------------------------------------------------------ tables and checks

    def _gather(
        self, name: str, t: Union[int, torch.Tensor], like: torch.Tensor, offset: int = 0, dtype: torch.dtype = None
    ) -> torch.Tensor:
        """Table values at timesteps `t`, shaped to broadcast against `like` (batch at dim 0), on its device.

        The tables are float64 for float64 inputs (or `dtype=torch.float64`) and float32 otherwise.
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

    def _check_indices(self, x: torch.Tensor, name: str) -> None:
        if torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices, got dtype {x.dtype}")
        if x.numel():
            low, high = int(x.min()), int(x.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise ValueError(f"{name} holds class id {bad}, outside [0, {self.num_classes}) (num_classes={self.num_classes})")

    def _check_timesteps(self, t: Union[int, torch.Tensor], name: str = "timesteps", low: int = 0) -> None:
        T = self.config.num_train_timesteps
        values = t if torch.is_tensor(t) else torch.tensor(t)
        if torch.is_floating_point(values):
            raise ValueError(f"{name} must be integers, got dtype {values.dtype}")
        if values.numel():
            bad = values[(values < low) | (values >= T)]
            if bad.numel():
                raise ValueError(f"{name} holds {int(bad.flatten()[0])}, outside [{low}, {T}) (num_train_timesteps={T})")

    def _check_log_probs(self, log_x: torch.Tensor, name: str) -> None:
        if log_x.dim() < 2 or log_x.shape[1] != self.num_classes:
            raise ValueError(
                f"{name} must have the class axis at dim 1 with {self.num_classes} classes, got shape {tuple(log_x.shape)}"
            )

    def _check_batch(self, t: Union[int, torch.Tensor], x: torch.Tensor, name: str = "timesteps") -> None:
        if torch.is_tensor(t) and t.dim() > 0 and t.shape != (x.shape[0],):
            raise ValueError(f"{name} must be a scalar or have shape ({x.shape[0]},), got shape {tuple(t.shape)}")

    # ------------------------------------------------------------------ log-space primitives

    def index_to_log_onehot(self, x: torch.LongTensor) -> torch.FloatTensor:
        """Class indices `(B, ...)` to log one-hot vectors `(B, K, ...)`, with `LOG_ZERO` in place of log(0)."""
        self._check_indices(x, "x")
        onehot = F.one_hot(x.long(), self.num_classes).movedim(-1, 1)
        return torch.where(onehot.bool(), 0.0, LOG_ZERO).float()

    def q_pred(self, log_x_start: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        """log q(x_t | x_0) = log(alpha_bar_t x_0 + (1 - alpha_bar_t) / K); `t = -1` returns `log_x_start`."""
        return torch.logaddexp(
            log_x_start + self._gather("log_cumprod_alpha", t, log_x_start, offset=1),
            self._gather("log_1_min_cumprod_alpha", t, log_x_start, offset=1) - math.log(self.num_classes),
        )

    def q_pred_one_timestep(self, log_x_t: torch.FloatTensor, t: Union[int, torch.Tensor]) -> torch.FloatTensor:
        """log q(x_t | x_{t-1}) as a function of x_{t-1}, for the observed x_t.

        It takes x_t, not x_{t-1}: Cat(x_t | alpha_t x_{t-1} + (1 - alpha_t) / K) is symmetric in x_t and x_{t-1},
        so mixing the one-hot x_t with the uniform distribution gives, at class k, the likelihood of x_{t-1} = k.
        """
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
                The current timestep index.
            prev_t (`int` or `torch.LongTensor` of shape `(B,)`, *optional*):
                The timestep index to go back to, any value in `[-1, t)`; defaults to `t - 1`. Skipping is exact:
                q(x_prev_t | x_t, x_0) is proportional to q(x_t | x_prev_t) q(x_prev_t | x_0).
        """
        self._check_log_probs(log_x_start, "log_x_start")
        self._check_log_probs(log_x_t, "log_x_t")
        if prev_t is None:
            log_prev_given_start = self.q_pred(log_x_start, t - 1)
            log_t_given_prev = self.q_pred_one_timestep(log_x_t, t)
        else:
            t_tensor = torch.as_tensor(t)
            gap = t_tensor - torch.as_tensor(prev_t)
            if (gap <= 0).any() or (torch.as_tensor(prev_t) < -1).any():
                raise ValueError(f"prev_t must lie in [-1, t), got prev_t={prev_t} for t={t}")
            log_prev_given_start = self.q_pred(log_x_start, prev_t)
            log_t_given_prev = self._log_transition(log_x_t, t, prev_t)
        unnormed = log_prev_given_start + log_t_given_prev
        return unnormed - torch.logsumexp(unnormed, dim=1, keepdim=True)

    # ------------------------------------------------------------------ training

    def sample_prior(self, shape, generator: Optional[torch.Generator] = None, device=None) -> torch.LongTensor:
        """Draw x_T from the uniform distribution over the K classes (q(x_T | x_0) is uniform: alpha_bar_T = 0)."""
        device = device if device is not None else (generator.device if generator is not None else "cpu")
        gen_device = generator.device if generator is not None else device
        return torch.randint(self.num_classes, tuple(shape), generator=generator, device=gen_device).to(device)

    def sample_categorical(self, log_probs: torch.FloatTensor, generator: Optional[torch.Generator] = None) -> torch.LongTensor:
        """Draw class indices `(B, ...)` from log-probabilities `(B, K, ...)` with the Gumbel-max trick."""
        gen_device = generator.device if generator is not None else log_probs.device
        uniform = torch.rand(log_probs.shape, generator=generator, device=gen_device, dtype=log_probs.dtype)
        uniform = uniform.to(log_probs.device).clamp(min=torch.finfo(log_probs.dtype).tiny)
        gumbel = -torch.log(-torch.log(uniform))
        return (gumbel + log_probs).argmax(dim=1)

    def add_noise(
        self, x_start: torch.LongTensor, timesteps: torch.LongTensor, generator: Optional[torch.Generator] = None
    ) -> torch.LongTensor:
        """Draw x_t ~ q(x_t | x_0) for each example; `x_start` holds indices `(B, ...)`, `timesteps` shape `(B,)`."""
        self._check_timesteps(timesteps)
        self._check_batch(timesteps, x_start)
        return self.sample_categorical(self.q_pred(self.index_to_log_onehot(x_start), timesteps), generator)

    def _check_loss_inputs(self, model_output, x_start, x_t, timesteps) -> torch.LongTensor:
        """Validate the arguments of the loss terms; returns the timesteps as a `(B,)` tensor on x_start's device."""
        self._check_log_probs(model_output, "model_output")
        if model_output.shape[2:] != x_start.shape[1:] or model_output.shape[0] != x_start.shape[0]:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} does not match x_start shape {tuple(x_start.shape)}")
        if x_t.shape != x_start.shape:
            raise ValueError(f"x_t shape {tuple(x_t.shape)} does not match x_start shape {tuple(x_start.shape)}")
        self._check_indices(x_start, "x_start")
        self._check_timesteps(timesteps)
        self._check_batch(timesteps, x_start)
        return torch.as_tensor(timesteps, device=x_start.device).expand(x_start.shape[0])

    def compute_loss(
        self,
        model_output: torch.FloatTensor,
        x_start: torch.LongTensor,
        x_t: torch.LongTensor,
        timesteps: torch.LongTensor,
    ) -> torch.FloatTensor:
        """
        The per-example loss term L_t in nats, summed over all non-batch dimensions.

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`): the denoiser's logits over x_0.
            x_start (`torch.LongTensor` of shape `(B, ...)`): the clean data x_0.
            x_t (`torch.LongTensor` of shape `(B, ...)`): the noisy sample at `timesteps`, from `add_noise`.
            timesteps (`torch.LongTensor` of shape `(B,)`): timestep indices in `[0, T)`.

        Returns:
            `torch.FloatTensor` of shape `(B,)`: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) where t > 0 and the
            decoder's negative log-likelihood -log p(x_0 | x_t) where t = 0.
        """
        timesteps = self._check_loss_inputs(model_output, x_start, x_t, timesteps)
        log_x_start = self.index_to_log_onehot(x_start).to(model_output.dtype)
        log_x_t = self.index_to_log_onehot(x_t).to(model_output.dtype)
        log_model_prob = self.q_posterior(F.log_softmax(model_output, dim=1), log_x_t, timesteps)
        log_true_prob = self.q_posterior(log_x_start, log_x_t, timesteps)

        kl = (log_true_prob.exp() * (log_true_prob - log_model_prob)).sum(dim=1)
        decoder_nll = -(log_x_start.exp() * log_model_prob).sum(dim=1)
        is_first = (timesteps == 0).view(-1, *([1] * (kl.dim() - 1)))
        return torch.where(is_first, decoder_nll, kl).flatten(1).sum(dim=1)

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

        Args: as for `compute_loss`.
        """
        timesteps = self._check_loss_inputs(model_output, x_start, x_t, timesteps)
        log_x_t = self.index_to_log_onehot(x_t).to(model_output.dtype)
        log_x0_given_xt = self.q_posterior(F.log_softmax(model_output, dim=1), log_x_t, timesteps, prev_t=-1)
        nll = -log_x0_given_xt.gather(1, x_start.long().unsqueeze(1)).squeeze(1)
        return nll.flatten(1).sum(dim=1)

    def prior_kl(self, x_start: torch.LongTensor) -> torch.FloatTensor:
        """KL(q(x_T | x_0) || uniform) per example, in nats."""
        log_qxT = self.q_pred(self.index_to_log_onehot(x_start), self.config.num_train_timesteps - 1)
        kl = (log_qxT.exp() * (log_qxT + math.log(self.num_classes))).sum(dim=1)
        return kl.flatten(1).sum(dim=1)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def negative_elbo(
        self,
        model_fn: Callable[[torch.LongTensor, torch.LongTensor], torch.FloatTensor],
        x_start: torch.LongTensor,
        generator: Optional[torch.Generator] = None,
        timesteps_per_batch: int = 8,
    ) -> torch.FloatTensor:
        """
        The full-T negative ELBO in nats per example: the prior term plus every L_t for t = 0..T-1.

        Args:
            model_fn (`Callable`): `model_fn(x_t, t)` returning logits `(N, K, ...)` for indices `x_t` `(N, ...)` and
                timesteps `t` `(N,)`.
            x_start (`torch.LongTensor` of shape `(B, ...)`): the data.
            generator (`torch.Generator`, *optional*): for the draws of x_t.
            timesteps_per_batch (`int`, defaults to 8): how many timesteps share one call of `model_fn`, so one call
                sees `B * timesteps_per_batch` examples; lower it to bound memory.
        """
        self._check_indices(x_start, "x_start")
        T = self.config.num_train_timesteps
        batch = x_start.shape[0]
        total = self.prior_kl(x_start).double()
        for first in range(0, T, timesteps_per_batch):
            ts = torch.arange(first, min(first + timesteps_per_batch, T), device=x_start.device)
            t = ts.repeat_interleave(batch)
            x0 = x_start.repeat(len(ts), *([1] * (x_start.dim() - 1)))
            x_t = self.add_noise(x0, t, generator=generator)
            losses = self.compute_loss(model_fn(x_t, t), x0, x_t, t)
            total += losses.double().view(len(ts), batch).sum(dim=0)
        return total

    @torch.no_grad()
    def negative_elbo_estimate(
        self,
        model_fn: Callable[[torch.LongTensor, torch.LongTensor], torch.FloatTensor],
        x_start: torch.LongTensor,
        generator: Optional[torch.Generator] = None,
    ) -> torch.FloatTensor:
        """An unbiased one-sample estimate of `negative_elbo`: T * L_t at one uniform t per example, plus the prior."""
        self._check_indices(x_start, "x_start")
        T = self.config.num_train_timesteps
        gen_device = generator.device if generator is not None else x_start.device
        t = torch.randint(T, (x_start.shape[0],), generator=generator, device=gen_device).to(x_start.device)
        x_t = self.add_noise(x_start, t, generator=generator)
        return T * self.compute_loss(model_fn(x_t, t), x_start, x_t, t) + self.prior_kl(x_start)

    # ------------------------------------------------------------------ inference

    def set_timesteps(self, num_inference_steps: int, device: Union[str, torch.device] = None):
        """
        Set the timesteps used for sampling: `num_inference_steps` integers evenly spaced from T - 1 down to 0.

        Args:
            num_inference_steps (`int`): how many denoiser calls sampling takes, in `[1, T]`.
            device (`str` or `torch.device`, *optional*): where to put `self.timesteps`.
        """
        T = self.config.num_train_timesteps
        if not isinstance(num_inference_steps, (int, np.integer)) or not 1 <= num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be an integer in [1, {T}], got {num_inference_steps!r}")
        self.num_inference_steps = int(num_inference_steps)
        steps = np.round(np.linspace(T - 1, 0, self.num_inference_steps)).astype(np.int64)
        self.timesteps = torch.from_numpy(steps).to(device)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep after `timestep` in `self.timesteps`, or -1 (the clean data) after the last one."""
        index = (self.timesteps == int(timestep)).nonzero()
        if len(index) == 0:
            raise ValueError(f"timestep {int(timestep)} is not in the scheduler's timesteps; call set_timesteps first")
        index = int(index[0])
        return int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1

    def step(
        self,
        model_output: torch.FloatTensor,
        timestep: Union[int, torch.Tensor],
        sample: torch.LongTensor,
        generator: Optional[torch.Generator] = None,
        return_dict: bool = True,
    ) -> Union[MultinomialSchedulerOutput, Tuple]:
        """
        Draw the sample at the next timestep of `self.timesteps` from p(x_prev | x_t).

        Args:
            model_output (`torch.FloatTensor` of shape `(B, K, ...)`): the denoiser's logits over x_0.
            timestep (`int`): the current timestep, one of `self.timesteps`.
            sample (`torch.LongTensor` of shape `(B, ...)`): the current sample x_t as class indices.
            generator (`torch.Generator`, *optional*): for the draw.
            return_dict (`bool`, defaults to `True`): return a [`MultinomialSchedulerOutput`] rather than a tuple.

        Returns:
            [`MultinomialSchedulerOutput`] or `tuple` `(prev_sample, pred_original_sample)`.
        """
        timestep = int(timestep)
        self._check_timesteps(timestep, "timestep")
        self._check_log_probs(model_output, "model_output")
        self._check_indices(sample, "sample")
        if model_output.shape[0] != sample.shape[0] or model_output.shape[2:] != sample.shape[1:]:
            raise ValueError(f"model_output shape {tuple(model_output.shape)} does not match sample shape {tuple(sample.shape)}")
        prev_t = self.previous_timestep(timestep)

        log_x_start = F.log_softmax(model_output, dim=1)
        log_x_t = self.index_to_log_onehot(sample).to(log_x_start.dtype)
        log_prev = self.q_posterior(log_x_start, log_x_t, timestep, prev_t)
        prev_sample = self.sample_categorical(log_prev, generator)

        if not return_dict:
            return (prev_sample, log_x_start)
        return MultinomialSchedulerOutput(prev_sample=prev_sample, pred_original_sample=log_x_start)
