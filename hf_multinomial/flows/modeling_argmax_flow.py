# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Argmax flows for text (Hoogeboom et al., 2021, Section 4) as a transformers model."""

import itertools
import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .cartesian import CartesianEncoding
from .configuration_argmax_flow import ArgmaxFlowConfig
from .density import AutoregressiveFlow, CouplingFlow
from .likelihood import FlowModelMixin
from .surjections import make_argmax_inverse


@dataclass
class ArgmaxFlowOutput(ModelOutput):
    """
    Output of [`ArgmaxFlowModel.forward`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The negative bound in nats per position, averaged over the batch: the training loss.
        log_likelihood_bound (`torch.FloatTensor` of shape `(batch_size,)`):
            The one-sample bound log p(v) - log q(v | x) <= log P(x) of each sequence, in nats.
        bits_per_dim (`torch.FloatTensor` of shape `()`):
            `loss` in bits (bits per character for text).
    """

    loss: Optional[torch.FloatTensor] = None
    log_likelihood_bound: Optional[torch.FloatTensor] = None
    bits_per_dim: Optional[torch.FloatTensor] = None


def check_positive(name: str, value, allow_none: bool = False) -> None:
    """A ValueError naming `name` and `value` unless `value` is a positive integer (or None when allowed): 0 never
    means "all" or "default"."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")


def first_non_finite(model: nn.Module) -> Optional[str]:
    """`"'name' (N of M values are NaN/inf)"` for the first parameter or buffer of `model` holding a NaN or an
    infinity; None when every value is finite."""
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if tensor.is_floating_point() and tensor.device.type != "meta" and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            kind = "NaN" if bool(torch.isnan(tensor).any()) else "inf"
            return f"{name!r} ({bad} of {tensor.numel()} values are {kind})"
    return None


def check_finite_draw(model: nn.Module, v: torch.Tensor) -> None:
    """A RuntimeError unless the draw `v` of the density flow is finite: the argmax of NaN is 0, so a broken model
    would otherwise sample all zeros. The message names the first non-finite parameter, if any."""
    if bool(torch.isfinite(v).all()):
        return
    bad = int((~torch.isfinite(v)).sum())
    culprit = first_non_finite(model)
    cause = (f"the parameter {culprit} is not finite" if culprit is not None
             else "the density flow's inverse overflowed (every parameter is finite)")
    raise RuntimeError(f"{type(model).__name__} drew non-finite values ({bad} of {v.numel()} entries of v): {cause}; "
                       "its samples would be meaningless")


class CheckedFlowMixin:
    """Argument and weight checks of the flow models, in front of `FlowModelMixin`: `batch_size=0` or
    `num_samples=0` are errors (not "all at once"), and a model loaded with NaN or infinite weights is refused."""

    def log_likelihood(self, input_ids, num_samples: int = 1, generator=None, batch_size: Optional[int] = None):
        check_positive("num_samples", num_samples)
        check_positive("batch_size", batch_size, allow_none=True)
        return super().log_likelihood(input_ids, num_samples=num_samples, generator=generator, batch_size=batch_size)

    log_likelihood.__doc__ = FlowModelMixin.log_likelihood.__doc__

    def sample(self, batch_size: int, generator=None, max_rounds: int = 100):
        check_positive("batch_size", batch_size)
        check_positive("max_rounds", max_rounds)
        return super().sample(batch_size, generator=generator, max_rounds=max_rounds)

    sample.__doc__ = FlowModelMixin.sample.__doc__

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, then a ValueError naming the parameter and the folder (or repository)
        when a loaded weight is NaN or infinite."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model_only = model[0] if isinstance(model, tuple) else model  # output_loading_info=True
        culprit = first_non_finite(model_only)
        if culprit is not None:
            raise ValueError(f"The weights of the {cls.__name__} in {os.fspath(pretrained_model_name_or_path)!r} "
                             f"are not finite: the parameter {culprit}")
        return model


class ArgmaxFlowPreTrainedModel(PreTrainedModel):
    config_class = ArgmaxFlowConfig
    base_model_prefix = "argmax_flow"
    main_input_name = "input_ids"

    def _init_weights(self, module):
        # Every layer initialises itself (the flows start at the identity through zero-initialised output layers);
        # transformers' generic re-initialisation would undo that.
        pass


class ContextNet(nn.Module):
    """The conditioner of q(v | x): an embedding of each position's digits and a bi-directional LSTM over the
    sequence, giving `num_params` numbers per digit (zero-initialised, so q starts at its standard form)."""

    def __init__(self, base: int, digits: int, num_params: int, context_size: int, context_layers: int):
        super().__init__()
        self.digits, self.num_params = digits, num_params
        self.embedding = nn.Embedding(base * digits, context_size)
        self.lstm = (
            nn.LSTM(context_size, context_size, num_layers=context_layers, batch_first=True, bidirectional=True)
            if context_layers > 0 else None
        )
        self.out = nn.Linear(2 * context_size if self.lstm is not None else context_size, digits * num_params)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.base = base

    def forward(self, digits: torch.Tensor) -> torch.Tensor:
        batch_size, seq_len, _ = digits.shape
        # Digit d with value m gets its own embedding row d * base + m; a position's embedding is their sum.
        offsets = torch.arange(self.digits, device=digits.device) * self.base
        h = self.embedding(digits + offsets).sum(dim=2)
        if self.lstm is not None:
            h, _ = self.lstm(h)
        return self.out(h).view(batch_size, seq_len, self.digits, self.num_params)


class ArgmaxFlowModel(CheckedFlowMixin, FlowModelMixin, ArgmaxFlowPreTrainedModel):
    """
    An argmax flow on sequences of `config.seq_len` classes in [0, `config.num_classes`): each class is written as
    Cartesian digits, q(v | x) lifts the digits to continuous v with argmax(v) = x, and a density flow gives p(v).

        model = ArgmaxFlowModel(ArgmaxFlowConfig(num_classes=27, seq_len=256))
        loss = model(input_ids).loss                      # nats per character, to minimise
        ids = model.sample(4, generator=torch.Generator().manual_seed(0))
        iwbo = model.log_likelihood(input_ids, num_samples=100)   # nats per sequence

    `forward`, `log_likelihood`, `sample_codes` and `sample` are those of [`FlowModelMixin`].
    """

    output_class = ArgmaxFlowOutput

    def __init__(self, config: ArgmaxFlowConfig):
        super().__init__(config)
        self.encoding = CartesianEncoding(config.num_classes, config.cartesian_base)
        self.inverse = make_argmax_inverse(config.inverse, self.encoding.base)
        width = self.encoding.digits * self.inverse.width_per_digit
        self.context = (
            ContextNet(self.encoding.base, self.encoding.digits, self.inverse.num_params, config.context_size,
                       config.context_layers)
            if self.inverse.num_params > 0 else None
        )
        if config.flow_type == "autoregressive":
            self.flow = AutoregressiveFlow(config.seq_len, width, config.hidden_size, config.num_layers,
                                           config.num_mixtures, num_steps=config.num_flow_steps,
                                           input_dropout=config.input_dropout)
        else:
            self.flow = CouplingFlow(config.seq_len, width, config.hidden_size, config.num_layers,
                                     config.num_mixtures, num_steps=config.num_flow_steps,
                                     dropout=config.input_dropout)
        self.post_init()

    def lift(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None):
        """One draw v ~ q(v | x), `(B, seq_len, width)`, and log q(v | x) in nats, `(B,)`. `input_ids` are assumed
        checked."""
        digits = self.encoding.encode(input_ids.long())
        params = self.context(digits) if self.context is not None else None
        return self.inverse(digits, params, generator=generator)

    def sample_bound(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One draw of v ~ q(v | x) and its bound log p(v) - log q(v | x), in nats per sequence, shape `(B,)`."""
        self._check_input_ids(input_ids)
        v, log_q = self.lift(input_ids, generator)
        return self.flow.log_prob(v) - log_q

    def decode(self, v: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Codes `(B, seq_len)` of continuous v `(B, seq_len, width)`: the argmax digit by digit (may be >= K for
        unused Cartesian codes). `generator` is unused (the argmax is deterministic). A non-finite v (a model with
        NaN weights) is a RuntimeError, not codes 0."""
        check_finite_draw(self, v)
        return self.encoding.decode(self.inverse.decode(v))


__all__ = ["ArgmaxFlowModel", "ArgmaxFlowOutput", "ArgmaxFlowPreTrainedModel"]
