# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""What every flow model over categorical data does with its one-draw bound and its sampler: the input checks, the
loss, the importance-weighted bound, and sampling that redraws examples holding unused Cartesian codes
([`FlowModelMixin`])."""

import math
from typing import Callable, Optional

import torch

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.uint8)


def importance_weighted_bound(
    sample_bound: Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor],
    input_ids: torch.Tensor,
    num_samples: int,
    generator: Optional[torch.Generator] = None,
    batch_size: Optional[int] = None,
) -> torch.Tensor:
    """
    log (1/k) sum_i exp(bound_i), bound_i = `sample_bound(input_ids, generator)` for k = `num_samples` independent
    draws: the IWBO, float64, shape `(B,)`. The `B * k` repeated rows are evaluated `batch_size` at a time (default:
    all at once).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    repeated = input_ids.repeat_interleave(num_samples, dim=0)
    chunk = batch_size or repeated.shape[0]
    bounds = torch.cat([sample_bound(part, generator) for part in repeated.split(chunk)])
    bounds = bounds.view(input_ids.shape[0], num_samples).double()
    return torch.logsumexp(bounds, dim=1) - math.log(num_samples)


def sample_valid(
    draw: Callable[[int], torch.Tensor], batch_size: int, num_classes: int, max_rounds: int, name: str = "examples"
) -> torch.Tensor:
    """
    `batch_size` examples from `draw(n)` (n examples of codes, any shape `(n, ...)`), drawing again every example
    that holds a code >= `num_classes` (an unused Cartesian code): the model conditioned on valid examples, whose
    probabilities are at least the model's. A `RuntimeError` says so when `max_rounds` draws still leave invalid
    ones.
    """
    result, todo = None, None
    for _ in range(max_rounds):
        codes = draw(batch_size if todo is None else len(todo))
        if result is None:
            result = torch.empty_like(codes)
            todo = torch.arange(batch_size, device=codes.device)
        valid = (codes < num_classes).flatten(1).all(dim=1)
        result[todo[valid]] = codes[valid]
        todo = todo[~valid]
        if len(todo) == 0:
            return result
    raise RuntimeError(
        f"{batch_size if todo is None else len(todo)} of {batch_size} {name} still hold unused Cartesian codes "
        f"(>= {num_classes}) after {max_rounds} draws: the model puts little mass on valid {name}"
    )


class FlowModelMixin:
    """
    The methods the text argmax flows and the segmentation flows share, on a transformers model whose config has
    `num_classes` and `sample_shape` (the shape of one example) and which supplies:

    - `sample_bound(input_ids, generator)`: one draw of the bound on log P(x), in nats per example, shape `(B,)`;
    - `decode(v, generator)`: the codes `(B, *sample_shape)` of a draw v of its density flow `self.flow`, which may
      be unused Cartesian codes >= `num_classes`;
    - `output_class`: its `ModelOutput` with fields `loss`, `log_likelihood_bound`, `bits_per_dim`.
    """

    output_class = None

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        shape = tuple(self.config.sample_shape)
        if tuple(input_ids.shape[1:]) != shape or input_ids.dim() != len(shape) + 1:
            raise ValueError(
                f"input_ids must have shape (batch_size, {', '.join(map(str, shape))}), got {tuple(input_ids.shape)}"
            )
        if input_ids.dtype not in _INTEGER_DTYPES:
            raise ValueError(f"input_ids must hold integer class ids, got dtype {input_ids.dtype}")
        if input_ids.numel():
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.num_classes:
                bad = low if low < 0 else high
                raise ValueError(f"class id {bad} is outside [0, {self.config.num_classes})")

    def forward(
        self,
        input_ids: torch.Tensor,
        generator: Optional[torch.Generator] = None,
        return_dict: Optional[bool] = None,
    ):
        """
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, *config.sample_shape)`): class ids in
                [0, num_classes).
            generator (`torch.Generator`, *optional*): for the draw v ~ q(v | x).
            return_dict (`bool`, *optional*): return the model's output class (default) or a tuple
                `(loss, log_likelihood_bound, bits_per_dim)`: the negative bound in nats per dimension (position or
                pixel) averaged over the batch, the bound of each example in nats, and `loss` in bits.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        bound = self.sample_bound(input_ids, generator)
        loss = -bound.mean() / math.prod(self.config.sample_shape)
        bits = loss / math.log(2.0)
        if not return_dict:
            return loss, bound, bits
        return self.output_class(loss=loss, log_likelihood_bound=bound, bits_per_dim=bits)

    @torch.no_grad()
    def log_likelihood(
        self,
        input_ids: torch.Tensor,
        num_samples: int = 1,
        generator: Optional[torch.Generator] = None,
        batch_size: Optional[int] = None,
    ) -> torch.Tensor:
        """
        The importance-weighted bound (IWBO) log (1/k) sum_i exp(bound_i) over k draws v_i ~ q(v | x), in nats per
        example, float64, shape `(B,)`: a lower bound on log P(x) for every k that tightens as k grows (in
        expectation); k = 1 is the ELBO of `forward`.

        Args:
            input_ids (`torch.LongTensor` of shape `(B, *config.sample_shape)`): the examples.
            num_samples (`int`): k, the number of draws from q per example.
            generator (`torch.Generator`, *optional*): for the draws.
            batch_size (`int`, *optional*): rows per forward pass (the `B * k` rows are cut into chunks of this
                size); default: all at once.
        """
        self._check_input_ids(input_ids)
        return importance_weighted_bound(self.sample_bound, input_ids, num_samples, generator, batch_size)

    @torch.no_grad()
    def sample_codes(self, batch_size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One sampling pass, v ~ p(v) then `decode`: `(batch_size, *config.sample_shape)` codes, which may include
        the unused Cartesian codes >= num_classes (see `sample`)."""
        return self.decode(self.flow.sample(batch_size, generator=generator), generator)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: Optional[torch.Generator] = None, max_rounds: int = 100):
        """
        Draw `batch_size` examples, `torch.LongTensor` of shape `(batch_size, *config.sample_shape)`: v ~ p(v), then
        x = `decode(v)`.

        With a Cartesian base, M**d may exceed K: an example holding an unused code (>= K) is drawn again (this
        samples the model conditioned on valid examples, whose probabilities are at least the model's). After
        `max_rounds` draws that still leave invalid examples a `RuntimeError` says so.
        """
        def draw(n):
            return self.sample_codes(n, generator=generator)

        return sample_valid(draw, batch_size, self.config.num_classes, max_rounds)
