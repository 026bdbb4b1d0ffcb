# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Density flows p(v) for sequences of continuous vectors v of shape (B, L, D), with a standard Gaussian base:
the autoregressive flow and the coupling flow of the paper's text experiments (Tables 6 and 7), both built from
the mixture-of-logistics CDF transform with LSTM conditioners.

Every layer maps data to base in `forward(v) -> (z, log_det (B,))` and back in `inverse(z) -> v`.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gaussian import gaussian_log_prob
from .transforms import (
    ChannelMixing,
    ReverseSequence,
    init_mixture_bias,
    mixture_logistic_cdf,
    mixture_logistic_cdf_inverse,
    mixture_num_params,
)


def _check_sizes(seq_len: int, width: int, num_steps: int) -> None:
    for name, value in (("seq_len", seq_len), ("width", width), ("num_steps", num_steps)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")


class DensityFlow(nn.Module):
    """A chain of invertible layers on (B, L, D) with a standard Gaussian base distribution.

    Args:
        seq_len (`int`): L.
        width (`int`): D, the number of values per position.
        layers (`List[nn.Module]`): Applied in order from data to base; each has `forward(v) -> (z, log_det)`
            and `inverse(z) -> v`. With none, p(v) is the standard Gaussian itself.
    """

    def __init__(self, seq_len: int, width: int, layers: List[nn.Module]):
        super().__init__()
        _check_sizes(seq_len, width, 1)
        self.seq_len = seq_len
        self.width = width
        self.layers = nn.ModuleList(layers)

    def _check(self, v: torch.Tensor, name: str) -> None:
        if v.dim() != 3 or tuple(v.shape[1:]) != (self.seq_len, self.width):
            raise ValueError(f"{name} must have shape (batch, {self.seq_len}, {self.width}), got {tuple(v.shape)}")

    def forward(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Data to base: v (B, L, D) -> (z (B, L, D), log |det dz/dv| (B,))."""
        self._check(v, "v")
        log_det = v.new_zeros(v.shape[0])
        for layer in self.layers:
            v, layer_log_det = layer(v)
            log_det = log_det + layer_log_det
        return v, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Base to data: z (B, L, D) -> v (B, L, D)."""
        self._check(z, "z")
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, v: torch.Tensor) -> torch.Tensor:
        """log p(v) in nats, summed over positions and values: (B, L, D) -> (B,)."""
        z, log_det = self(v)
        return gaussian_log_prob(z).flatten(1).sum(1) + log_det

    def sample(self, num_samples: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Draws `num_samples` sequences v (num_samples, L, D): z from the Gaussian base, then the inverse."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        reference = next(self.parameters(), None)
        if reference is None:  # a flow without layers: sample where the generator lives
            reference = torch.empty(0, device=generator.device if generator is not None else "cpu")
        z = torch.randn(
            num_samples, self.seq_len, self.width, generator=generator, device=reference.device, dtype=reference.dtype
        )
        with torch.no_grad():
            return self.inverse(z)


def lstm_step(lstm: nn.LSTM, x: torch.Tensor, state: Optional[List[Tuple[torch.Tensor, torch.Tensor]]]):
    """One time step of a unidirectional `nn.LSTM` in eval mode: x (B, input_size) -> (output (B, hidden), state),
    state a list of (h, c) per layer (None for zeros). The same equations as `nn.LSTM` (gates i, f, g, o), written
    out because on CPU a one-step `nn.LSTM` call costs about four times as much as these few matmuls."""
    if state is None:
        zeros = x.new_zeros(x.shape[0], lstm.hidden_size)
        state = [(zeros, zeros)] * lstm.num_layers
    new_state = []
    for k, (h, c) in enumerate(state):
        gates = F.linear(x, getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"bias_ih_l{k}"))
        gates = gates + F.linear(h, getattr(lstm, f"weight_hh_l{k}"), getattr(lstm, f"bias_hh_l{k}"))
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        x = torch.sigmoid(o) * torch.tanh(c)
        new_state.append((x, c))
    return x, new_state


class AutoregressiveMixtureLayer(nn.Module):
    """One autoregressive step: value d at position l goes through the mixture-of-logistics CDF whose parameters
    depend on all positions before l (through an LSTM) and on values 0..d-1 at position l (through a masked
    hidden layer), so the Jacobian is triangular in the order (l, d).

    The LSTM reads the sequence shifted right by one, with a learned start vector in front. In training, input
    dropout zeroes each position's whole input vector with probability `input_dropout` (no rescaling), as the
    paper's AR flow does. The density is one parallel pass; the inverse steps the LSTM position by position with
    its carried state and inverts the D values of a position one after the other: O(L D) root searches.

    Args:
        width (`int`): D.
        hidden_size (`int`): LSTM hidden units.
        num_layers (`int`): LSTM layers.
        num_mixtures (`int`): Logistic components K per element.
        input_dropout (`float`): Probability of dropping a position's input in training.
    """

    def __init__(self, width: int, hidden_size: int, num_layers: int, num_mixtures: int, input_dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
        self.width = width
        self.num_mixtures = num_mixtures
        self.input_dropout = input_dropout
        num_params = mixture_num_params(num_mixtures)
        head = max(16, hidden_size // 4)  # hidden units per value d of the masked head
        self.start = nn.Parameter(torch.zeros(width))
        self.lstm = nn.LSTM(width, hidden_size, num_layers=num_layers, batch_first=True)
        self.context = nn.Linear(hidden_size, width * head)
        # within[d, e] maps value e of the same position into the hidden units of value d; only e < d is used.
        self.within = nn.Parameter(torch.randn(width, width, head) / width**0.5)
        self.register_buffer("within_mask", torch.tril(torch.ones(width, width), -1).unsqueeze(-1))
        self.out_weight = nn.Parameter(torch.zeros(width, head, num_params))
        self.out_bias = nn.Parameter(torch.empty(width, num_params))
        init_mixture_bias(self.out_bias, num_mixtures)

    def _params(self, context: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """context (..., D, H) and v (..., D) -> mixture parameters (..., D, P); value d sees v[..., :d] only."""
        hidden = context + torch.einsum("...e,deh->...dh", v, self.within * self.within_mask)
        return torch.einsum("...dh,dhp->...dp", F.gelu(hidden), self.out_weight) + self.out_bias

    def forward(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        batch, length, width = v.shape
        inputs = v
        if self.training and self.input_dropout > 0:
            keep = torch.rand(batch, length, 1, device=v.device, dtype=v.dtype) >= self.input_dropout
            inputs = inputs * keep
        inputs = torch.cat([self.start.expand(batch, 1, width).to(v.dtype), inputs[:, :-1]], dim=1)
        features, _ = self.lstm(inputs)
        context = self.context(features).view(batch, length, width, -1)
        z, log_det = mixture_logistic_cdf(v, self._params(context, v), self.num_mixtures)
        return z, log_det.sum(dim=(1, 2))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        batch, length, width = z.shape
        inputs = self.start.expand(batch, width).to(z.dtype)
        state = None
        positions = []
        for l in range(length):
            features, state = lstm_step(self.lstm, inputs, state)
            context = self.context(features).view(batch, width, -1)
            v_l = z.new_zeros(batch, width)
            for d in range(width):
                hidden = context[:, d] + v_l[:, :d] @ self.within[d, :d]
                params = F.gelu(hidden) @ self.out_weight[d] + self.out_bias[d]
                v_d = mixture_logistic_cdf_inverse(z[:, l, d], params, self.num_mixtures)
                v_l = torch.cat([v_l[:, :d], v_d[:, None], v_l[:, d + 1 :]], dim=1)
            positions.append(v_l)
            inputs = v_l
        return torch.stack(positions, dim=1)


class CouplingMixtureLayer(nn.Module):
    """One coupling step: the values selected by `mask` condition, through a bi-directional LSTM over the whole
    sequence, the mixture-of-logistics CDF applied to the other values. The LSTM reads v * mask and mask itself,
    so it never sees the values being transformed.

    Args:
        mask (`torch.Tensor` of shape `(L, D)`): 1 for conditioning values, 0 for transformed values.
        hidden_size (`int`): LSTM hidden units per direction.
        num_layers (`int`): LSTM layers.
        num_mixtures (`int`): Logistic components K per element.
        dropout (`float`): Dropout between LSTM layers and on the LSTM output, active only in training.
    """

    def __init__(self, mask: torch.Tensor, hidden_size: int, num_layers: int, num_mixtures: int, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        length, width = mask.shape
        self.num_mixtures = num_mixtures
        self.register_buffer("mask", mask.float())
        self.lstm = nn.LSTM(
            2 * width, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden_size, width * mixture_num_params(num_mixtures))
        nn.init.zeros_(self.out.weight)
        init_mixture_bias(self.out.bias, num_mixtures)

    def _params(self, v: torch.Tensor) -> torch.Tensor:
        batch, length, width = v.shape
        mask = self.mask.to(v.dtype).expand(batch, length, width)
        features, _ = self.lstm(torch.cat([v * mask, mask], dim=-1))
        return self.out(self.dropout(features)).view(batch, length, width, -1)

    def forward(self, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        y, log_det = mixture_logistic_cdf(v, self._params(v), self.num_mixtures)
        transformed = self.mask == 0
        return torch.where(transformed, y, v), (log_det * transformed).sum(dim=(1, 2))

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        params = self._params(z)  # z equals v on the conditioning values, the only ones the LSTM reads
        transformed = self.mask == 0
        v = z.clone()
        v[:, transformed] = mixture_logistic_cdf_inverse(z[:, transformed], params[:, transformed], self.num_mixtures)
        return v


class AutoregressiveFlow(DensityFlow):
    """The Argmax AR Flow's density model: `num_steps` autoregressive mixture-CDF steps, with the sequence
    reversed and the channels mixed by an invertible 1x1 map between steps.

    Within a position the D values are autoregressive too (value d is conditioned on values < d of its position
    and on all previous positions), so one step is a fully autoregressive flow in the order (l, d). Sampling
    costs num_steps * L * D sequential root searches.

    Args:
        seq_len (`int`): L.
        width (`int`): D, values per position.
        hidden_size (`int`): LSTM hidden units (2048 in the paper).
        num_layers (`int`): LSTM layers (2 in the paper).
        num_mixtures (`int`): Logistic components per element.
        num_steps (`int`): Autoregressive steps.
        input_dropout (`float`): Probability of dropping a position's LSTM input in training (0.25 in the paper).
    """

    def __init__(
        self,
        seq_len: int,
        width: int,
        hidden_size: int,
        num_layers: int,
        num_mixtures: int,
        num_steps: int = 1,
        input_dropout: float = 0.0,
    ):
        _check_sizes(seq_len, width, num_steps)
        layers = []
        for step in range(num_steps):
            if step > 0:
                layers += [ReverseSequence(), ChannelMixing(width)]
            layers.append(AutoregressiveMixtureLayer(width, hidden_size, num_layers, num_mixtures, input_dropout))
        super().__init__(seq_len, width, layers)


class CouplingFlow(DensityFlow):
    """The Argmax Coupling Flow's density model: `num_steps` coupling steps with bi-directional LSTM conditioners
    and an invertible 1x1 channel mixing before every step but the first.

    With D >= 2, step k conditions on the first D // 2 values of every position and transforms the rest (k even),
    or conditions on the last D // 2 and transforms the rest (k odd). With D == 1 the split is over the sequence
    instead: even positions condition odd ones (k even), then the other way round.

    Args:
        seq_len (`int`): L (at least 2 when width is 1).
        width (`int`): D, values per position.
        hidden_size (`int`): LSTM hidden units per direction (512 in the paper for text8).
        num_layers (`int`): LSTM layers (2 in the paper).
        num_mixtures (`int`): Logistic components per element.
        num_steps (`int`): Coupling steps.
        dropout (`float`): Dropout in the conditioners, active only in training.
    """

    def __init__(
        self,
        seq_len: int,
        width: int,
        hidden_size: int,
        num_layers: int,
        num_mixtures: int,
        num_steps: int,
        dropout: float = 0.0,
    ):
        _check_sizes(seq_len, width, num_steps)
        if width == 1 and seq_len < 2:
            raise ValueError(f"a coupling flow with width 1 splits the sequence and needs seq_len >= 2, got {seq_len}")
        layers = []
        for step in range(num_steps):
            mask = torch.zeros(seq_len, width)
            if width == 1:
                mask[step % 2 :: 2] = 1
            elif step % 2 == 0:
                mask[:, : width // 2] = 1
            else:
                mask[:, width - width // 2 :] = 1
            if step > 0:
                layers.append(ChannelMixing(width))
            layers.append(CouplingMixtureLayer(mask, hidden_size, num_layers, num_mixtures, dropout))
        super().__init__(seq_len, width, layers)
