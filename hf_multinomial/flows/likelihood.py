# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""What every flow model over categorical data does with its one-draw bound and its sampler: the importance-weighted
bound, and sampling that redraws examples holding unused Cartesian codes."""

import math
from typing import Callable, Optional

import torch


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
