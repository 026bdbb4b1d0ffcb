# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Argmax flows for text (Hoogeboom et al., 2021, Section 4) as a transformers model."""

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .cartesian import CartesianEncoding
from .configuration_argmax_flow import ArgmaxFlowConfig
from .density import AutoregressiveFlow, CouplingFlow, StandardNormalFlow
from .likelihood import importance_weighted_bound, sample_valid
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


class ArgmaxFlowModel(ArgmaxFlowPreTrainedModel):
    """
    An argmax flow on sequences of `config.seq_len` classes in [0, `config.vocab_size`): each class is written as
    Cartesian digits, q(v | x) lifts the digits to continuous v with argmax(v) = x, and a density flow gives p(v).

        model = ArgmaxFlowModel(ArgmaxFlowConfig(vocab_size=27, seq_len=256))
        loss = model(input_ids).loss                      # nats per character, to minimise
        ids = model.sample(4, generator=torch.Generator().manual_seed(0))
        iwbo = model.log_likelihood(input_ids, num_samples=100)   # nats per sequence
    """

    def __init__(self, config: ArgmaxFlowConfig):
        super().__init__(config)
        self.encoding = CartesianEncoding(config.vocab_size, config.cartesian_base)
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
        elif config.flow_type == "coupling":
            self.flow = CouplingFlow(config.seq_len, width, config.hidden_size, config.num_layers,
                                     config.num_mixtures, num_steps=config.num_flow_steps,
                                     dropout=config.input_dropout)
        else:
            self.flow = StandardNormalFlow(config.seq_len, width)
        self.post_init()

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        if input_ids.dim() != 2 or input_ids.shape[1] != self.config.seq_len:
            raise ValueError(
                f"input_ids must have shape (batch_size, {self.config.seq_len}), got {tuple(input_ids.shape)}"
            )
        if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(f"input_ids must hold integer class ids, got dtype {input_ids.dtype}")

    def sample_bound(self, input_ids: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One draw of v ~ q(v | x) and its bound log p(v) - log q(v | x), in nats per sequence, shape `(B,)`."""
        self._check_input_ids(input_ids)
        digits = self.encoding.encode(input_ids.long())  # rejects ids outside [0, K), naming them
        params = self.context(digits) if self.context is not None else None
        v, log_q = self.inverse(digits, params, generator=generator)
        return self.flow.log_prob(v) - log_q

    def forward(
        self,
        input_ids: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        return_dict: Optional[bool] = None,
    ):
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`): class ids in [0, vocab_size).
            generator (`torch.Generator`, *optional*): for the draw v ~ q(v | x).
            return_dict (`bool`, *optional*): return an [`ArgmaxFlowOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        bound = self.sample_bound(input_ids, generator)
        loss = -bound.mean() / self.config.seq_len
        bits = loss / math.log(2.0)
        if not return_dict:
            return loss, bound, bits
        return ArgmaxFlowOutput(loss=loss, log_likelihood_bound=bound, bits_per_dim=bits)

    @torch.no_grad()
    def log_likelihood(
        self,
        input_ids: torch.Tensor,
        num_samples: int = 1,
        generator: Optional[torch.Generator] = None,
        batch_size: Optional[int] = None,
    ) -> torch.Tensor:
        """
        The importance-weighted bound (IWBO) log (1/k) sum_i p(v_i) / q(v_i | x), v_i ~ q(v | x), in nats per
        sequence, shape `(B,)`. It is a lower bound on log P(x) for every k and tightens as k grows; k = 1 is the
        ELBO of `forward`.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, seq_len)`): the sequences.
            num_samples (`int`): k, the number of draws from q per sequence.
            generator (`torch.Generator`, *optional*): for the draws.
            batch_size (`int`, *optional*): rows per forward pass (the `B * k` rows are cut into chunks of this
                size); default: all at once.
        """
        self._check_input_ids(input_ids)
        return importance_weighted_bound(self.sample_bound, input_ids, num_samples, generator, batch_size)

    @torch.no_grad()
    def sample_codes(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One sampling pass, v ~ p(v) then the argmax digit by digit: `(batch_size, seq_len)` codes, which may
        include the unused Cartesian codes >= K (see [`~ArgmaxFlowModel.sample`])."""
        return self.encoding.decode(self.inverse.decode(self.flow.sample(batch_size, generator=generator)))

    @torch.no_grad()
    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, max_rounds: int = 100):
        """
        Draw `batch_size` sequences, `torch.LongTensor` of shape `(batch_size, seq_len)`: v ~ p(v), then
        x = argmax(v) digit by digit.

        With a Cartesian base, M**d may exceed K: a sequence that decodes to an unused code (>= K) is drawn again
        (this samples the model conditioned on valid sequences, whose probabilities are at least the model's).
        After `max_rounds` draws that still leave invalid sequences a `RuntimeError` says so.
        """
        def draw(n):
            return self.sample_codes(n, generator=generator)

        return sample_valid(draw, batch_size, self.config.vocab_size, max_rounds, name="sequences")


__all__ = ["ArgmaxFlowModel", "ArgmaxFlowOutput", "ArgmaxFlowPreTrainedModel"]
