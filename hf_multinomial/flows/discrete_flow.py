# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""A Discrete Flow (Tran et al., 2019): the baseline of the Argmax Flows paper's Appendix C (quantized eight Gaussians).

One autoregressive layer of modular location shifts on ids x in {0..K-1}^L, and a factorized categorical base:

    z_1 = (x_1 + c) mod K,    z_l = (x_l + mu(x_{<l})) mod K  (l >= 2),    log P(x) = sum_l log p_l(z_l)

where c is a learned constant shift and mu(x_{<l}) = argmax of logits from an embedding of the history (one table
row per possible history, as the Discrete Flows toy). Integers modulo K form a group, so the map is a bijection of
{0..K-1}^L for any shifts, and the probability mass needs no Jacobian.

The argmax has no gradient, so training uses the straight-through estimator of Tran et al.: the shift is the hard
one-hot argmax in the forward pass and the gradient is that of softmax(logits / temperature). Because x is data
(a hard one-hot), the one-hot of z_l = x_l + shift is the shift's one-hot rolled by x_l, so its value is exact and
the gradient reaches the shift logits. The estimator is biased, which is why these flows are hard to optimise
(the paper's reproduction reached 7.0 nats on the toy, whose entropy is 6.32).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


__all__ = ["DiscreteFlow", "straight_through_one_hot_argmax"]


def straight_through_one_hot_argmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The one-hot argmax of `logits` (last axis) whose gradient is that of softmax(logits / temperature)."""
    soft = torch.softmax(logits / temperature, dim=-1)
    hard = F.one_hot(logits.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard + soft - soft.detach()


class DiscreteFlow(nn.Module):
    """A single autoregressive location-shift Discrete Flow with a factorized categorical base.

    Args:
        num_classes: K, the number of classes per position.
        seq_len: L, the number of positions. The shift of position l is looked up from the whole history
            x_{<l}, a table of K**(l-1) rows of K logits, so L must stay small (L = 2 for the toy).
        temperature: the softmax temperature of the straight-through gradient (Tran et al.: 0.1).
        init_std: standard deviation of the initial shift logits.
    """

    def __init__(self, num_classes: int, seq_len: int = 2, temperature: float = 0.1, init_std: float = 0.01):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if seq_len < 1 or num_classes ** (seq_len - 1) > 2**24:
            raise ValueError(f"seq_len={seq_len} needs a history table of {num_classes}**{seq_len - 1} rows: too large")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.num_classes = num_classes
        self.seq_len = seq_len
        self.temperature = temperature
        self.base_logits = nn.Parameter(torch.zeros(seq_len, num_classes))
        self.first_shift_logits = nn.Parameter(init_std * torch.randn(num_classes))
        self.shift_logits = nn.ModuleList(nn.Embedding(num_classes**l, num_classes) for l in range(1, seq_len))
        for table in self.shift_logits:
            nn.init.normal_(table.weight, std=init_std)

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.dim() != 2 or ids.shape[1] != self.seq_len:
            raise ValueError(f"ids must have shape (batch, {self.seq_len}), got {tuple(ids.shape)}")
        if ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"ids must be integer class ids, got dtype {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_classes):
            bad = ids[(ids < 0) | (ids >= self.num_classes)][0].item()
            raise ValueError(f"class id {bad} is outside [0, {self.num_classes})")

    def _shift_logits(self, ids: torch.Tensor, position: int) -> torch.Tensor:
        """Logits (B, K) of the shift of `position` given the history ids[:, :position]."""
        if position == 0:
            return self.first_shift_logits.expand(ids.shape[0], -1)
        powers = self.num_classes ** torch.arange(position, device=ids.device)
        return self.shift_logits[position - 1]((ids[:, :position] * powers).sum(-1))

    def forward_map(self, ids: torch.Tensor) -> torch.Tensor:
        """The bijection data -> base: ids (B, L) -> z (B, L), with hard shifts."""
        self._check_ids(ids)
        shifts = torch.stack([self._shift_logits(ids, l).argmax(-1) for l in range(self.seq_len)], dim=1)
        return (ids + shifts) % self.num_classes

    def inverse_map(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse base -> data, position by position: x_l = (z_l - shift(x_{<l})) mod K."""
        self._check_ids(z)
        x = torch.zeros_like(z)
        for l in range(self.seq_len):
            x[:, l] = (z[:, l] - self._shift_logits(x, l).argmax(-1)) % self.num_classes
        return x

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log P(ids) in nats, (B,). Differentiable through the straight-through shifts."""
        self._check_ids(ids)
        k = self.num_classes
        log_base = torch.log_softmax(self.base_logits, dim=-1)  # (L, K)
        # one_hot(z_l)[j] = shift_one_hot[(j - x_l) mod K]: the shift's one-hot rolled by x_l.
        roll = (torch.arange(k, device=ids.device) - ids[..., None]) % k  # (B, L, K)
        log_p = 0.0
        for l in range(self.seq_len):
            shift = straight_through_one_hot_argmax(self._shift_logits(ids, l), self.temperature)  # (B, K)
            z_one_hot = shift.gather(-1, roll[:, l])
            log_p = log_p + (z_one_hot * log_base[l]).sum(-1)
        return log_p

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood -log P(ids) in nats, (B,); `.mean()` is the training loss."""
        return -self.log_prob(ids)

    @torch.no_grad()
    def sample(self, num_samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """`num_samples` draws (num_samples, L) int64: z from the factorized base, then the inverse map."""
        probs = torch.softmax(self.base_logits, dim=-1)
        z = torch.multinomial(probs, num_samples, replacement=True, generator=generator).T.contiguous()
        return self.inverse_map(z)

    @torch.no_grad()
    def pmf(self) -> torch.Tensor:
        """The exact probability mass of every point of {0..K-1}^L, a tensor of shape (K,) * L (enumeration)."""
        k, length = self.num_classes, self.seq_len
        grid = torch.cartesian_prod(*[torch.arange(k, device=self.base_logits.device)] * length).reshape(-1, length)
        return self.log_prob(grid).exp().reshape((k,) * length)
