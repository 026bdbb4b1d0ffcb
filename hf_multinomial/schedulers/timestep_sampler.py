# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Importance sampling of the training timestep (Nichol and Dhariwal, 2021; the paper's Appendix B)."""

import math
from typing import Optional, Tuple

import torch


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class ImportanceTimestepSampler:
    """
    Draws training timesteps t with probability q(t) proportional to sqrt(E[L_t^2]).

    E[L_t^2] is a running average (`decay` of the old value per update) of the squared loss seen at each t. Until
    every t has been seen more than `min_count` times, t is drawn uniformly. Training then minimises
    `L_t / q(t) + prior`, an unbiased estimate of the negative ELBO whatever q is.

    In data-parallel training every process must hold the same history: gather `(timesteps, losses)` from all
    processes and pass the gathered tensors to `update` on each of them. The state goes into checkpoints with
    `state_dict` / `load_state_dict`.

    Args:
        num_train_timesteps (`int`): T.
        min_count (`int`, defaults to 10): draws stay uniform until every t has more than this many updates.
        decay (`float`, defaults to 0.9): weight of the old value in the running average of L_t^2.
        uniform_mix (`float`, defaults to 1e-4): added to sqrt(E[L_t^2]) before normalising, so that no q(t) is 0.
    """

    def __init__(self, num_train_timesteps: int, min_count: int = 10, decay: float = 0.9, uniform_mix: float = 1e-4):
        _check_int("num_train_timesteps", num_train_timesteps, 1)
        _check_int("min_count", min_count, 0)
        if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        if not isinstance(uniform_mix, (int, float)) or isinstance(uniform_mix, bool) or not 0 < uniform_mix < math.inf:
            raise ValueError(f"uniform_mix must be a finite number > 0, got {uniform_mix!r}")
        self.num_train_timesteps = num_train_timesteps
        self.min_count = min_count
        self.decay = decay
        self.uniform_mix = uniform_mix
        self.loss_sq_history = torch.zeros(num_train_timesteps, dtype=torch.float64)
        self.counts = torch.zeros(num_train_timesteps, dtype=torch.long)

    @property
    def is_warm(self) -> bool:
        """Whether every timestep has been seen often enough to importance-sample."""
        return bool((self.counts > self.min_count).all())

    def probabilities(self) -> torch.Tensor:
        """q(t) for t = 0..T-1, float64."""
        if not self.is_warm:
            return torch.full((self.num_train_timesteps,), 1.0 / self.num_train_timesteps, dtype=torch.float64)
        weights = self.loss_sq_history.sqrt() + self.uniform_mix
        return weights / weights.sum()

    def sample(
        self, batch_size: int, generator: Optional[torch.Generator] = None, device=None
    ) -> Tuple[torch.LongTensor, torch.FloatTensor]:
        """Draw `batch_size` timesteps; returns `(timesteps, q(timesteps))`, both of shape `(batch_size,)`."""
        _check_int("batch_size", batch_size, 1)
        probs = self.probabilities()
        timesteps = torch.multinomial(probs.float(), batch_size, replacement=True, generator=generator)
        return timesteps.to(device), probs[timesteps].float().to(device)

    @torch.no_grad()
    def update(self, timesteps: torch.LongTensor, losses: torch.Tensor) -> None:
        """Record the per-example losses L_t (nats, not divided by q(t)) at their timesteps, in order."""
        if not torch.is_tensor(timesteps) or timesteps.is_floating_point() or timesteps.is_complex() \
                or timesteps.dtype == torch.bool:
            raise ValueError(f"timesteps must be an integer tensor, got {timesteps!r}")
        timesteps = timesteps.detach().flatten().cpu().long()
        losses_sq = losses.detach().flatten().cpu().double() ** 2
        if timesteps.shape != losses_sq.shape:
            raise ValueError(f"timesteps has {timesteps.numel()} entries but losses has {losses_sq.numel()}")
        out_of_range = (timesteps < 0) | (timesteps >= self.num_train_timesteps)
        if out_of_range.any():  # a negative t would update the end of the history
            raise ValueError(
                f"timesteps holds {int(timesteps[out_of_range][0])}, outside [0, {self.num_train_timesteps})"
            )
        if not torch.isfinite(losses_sq).all():  # one NaN would poison q(t) for good
            bad = losses.detach().flatten().cpu()[~torch.isfinite(losses_sq)]
            raise ValueError(
                f"losses holds {float(bad[0])}, not finite, at {int(bad.numel())} of {losses_sq.numel()} entries"
            )
        for t, loss_sq in zip(timesteps.tolist(), losses_sq.tolist()):
            if self.counts[t] == 0:
                self.loss_sq_history[t] = loss_sq
            else:
                self.loss_sq_history[t] = self.decay * self.loss_sq_history[t] + (1 - self.decay) * loss_sq
            self.counts[t] += 1

    def state_dict(self) -> dict:
        return {"loss_sq_history": self.loss_sq_history.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict) -> None:
        history, counts = state["loss_sq_history"], state["counts"]
        if history.shape != (self.num_train_timesteps,) or counts.shape != (self.num_train_timesteps,):
            raise ValueError(
                f"state has history for {history.shape[0]} timesteps, this sampler has {self.num_train_timesteps}"
            )
        if not torch.isfinite(history).all() or (history < 0).any() or (counts < 0).any():
            raise ValueError("state holds a non-finite or negative squared-loss history, or a negative count")
        self.loss_sq_history = history.clone().double()
        self.counts = counts.clone().long()
