# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Likelihood evaluation of trained models: negative ELBOs (or importance-weighted bounds) per example, turned into
bits per unit.

For diffusion, the loops over timesteps that call the denoiser are here; the scheduler supplies the terms
(`prior_kl`, `add_noise`, `compute_loss`), as a diffusers scheduler runs no model."""

import math
from typing import Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from .checks import check_count
from .metrics import load_bits_per_dim


ModelFn = Callable[[torch.LongTensor, torch.LongTensor], torch.FloatTensor]


def _check_examples(name: str, examples) -> None:
    if not torch.is_tensor(examples) or examples.dim() < 1 or examples.shape[0] == 0:
        shape = tuple(examples.shape) if torch.is_tensor(examples) else type(examples).__name__
        raise ValueError(f"{name} must be a tensor holding at least one example (batch at dim 0), got {shape}")


def sampler_steps(scheduler, num_inference_steps: Optional[int] = None):
    """The reverse steps `(t, prev_t)` of the sampler with `num_inference_steps` S denoiser calls (default T), as two
    `(S,)` int64 numpy arrays in increasing t: the grid of `scheduler.set_timesteps(S)`, each point paired with the
    next one down, the last (t = 0 when S > 1) with the data (-1)."""
    T = scheduler.config.num_train_timesteps
    steps = scheduler.inference_timesteps(T if num_inference_steps is None else num_inference_steps)
    previous = np.append(steps[1:], -1)
    return steps[::-1].copy(), previous[::-1].copy()


@torch.no_grad()
def negative_elbo(
    model_fn: ModelFn,
    scheduler,
    x_start: torch.LongTensor,
    generator: Optional[torch.Generator] = None,
    timesteps_per_batch: int = 8,
    num_inference_steps: Optional[int] = None,
) -> torch.DoubleTensor:
    """
    The negative ELBO in nats per example of the sampler with `num_inference_steps` steps: the prior term, plus
    KL(q(x_prev | x_t, x_0) || p(x_prev | x_t)) for each step between consecutive points of its grid, plus
    -log p(x_0 | x_t) of its last step to the data. With the default, S = T, this is the full-T bound (every L_t for
    t = 0..T-1); fewer steps give the bound of the faster sampler, which the skip posteriors make exact.

    Args:
        model_fn (`Callable`):
            `model_fn(x_t, t)` returns logits `(N, K, ...)` over x_0 for indices `x_t` `(N, ...)` and timesteps `t`
            `(N,)`.
        scheduler ([`MultinomialScheduler`]):
            The diffusion process.
        x_start (`torch.LongTensor` of shape `(B, ...)`):
            The data.
        generator (`torch.Generator`, *optional*):
            For the draws of x_t (one per example and step, in increasing t: at S = T the same draws as before).
        timesteps_per_batch (`int`, defaults to 8):
            How many steps share one call of `model_fn`, so one call sees `B * timesteps_per_batch` examples;
            lower it to bound memory. A positive integer.
        num_inference_steps (`int`, *optional*):
            S, the sampler's denoiser calls, in `[1, T]` (default T).

    Returns:
        `torch.DoubleTensor` of shape `(B,)`.

    Raises:
        ValueError: For a `timesteps_per_batch` that is not a positive integer, `num_inference_steps` outside
            `[1, T]`, ids out of range, or non-finite logits from `model_fn` (the message names the timesteps).
    """
    check_count("timesteps_per_batch", timesteps_per_batch)
    _check_examples("x_start", x_start)
    steps, previous = sampler_steps(scheduler, num_inference_steps)
    batch = x_start.shape[0]
    total = scheduler.prior_kl(x_start).double()  # also checks that x_start holds class indices
    for first in range(0, len(steps), timesteps_per_batch):
        chunk = slice(first, first + timesteps_per_batch)
        ts = torch.from_numpy(steps[chunk]).to(x_start.device)
        t = ts.repeat_interleave(batch)
        prev_t = None  # the training steps t -> t - 1, tabulated once
        if num_inference_steps is not None:
            prev_t = torch.from_numpy(previous[chunk]).to(x_start.device).repeat_interleave(batch)
        x0 = x_start.repeat(len(ts), *([1] * (x_start.dim() - 1)))
        x_t = scheduler.add_noise(x0, t, generator=generator)
        losses = scheduler.compute_loss(model_fn(x_t, t), x0, x_t, t, prev_t)
        total += losses.double().view(len(ts), batch).sum(dim=0)
    return total


@torch.no_grad()
def negative_elbo_estimate(
    model_fn: ModelFn, scheduler, x_start: torch.LongTensor, generator: Optional[torch.Generator] = None,
    num_inference_steps: Optional[int] = None,
) -> torch.FloatTensor:
    """
    An unbiased one-sample estimate of [`negative_elbo`] per example: S times the term of one uniformly drawn step of
    the S-step sampler (T * L_t at a uniform t by default), plus the prior term. The arguments are those of
    [`negative_elbo`].
    """
    _check_examples("x_start", x_start)
    steps, previous = sampler_steps(scheduler, num_inference_steps)
    prior = scheduler.prior_kl(x_start)  # also checks that x_start holds class indices
    gen_device = generator.device if generator is not None else x_start.device
    index = torch.randint(len(steps), (x_start.shape[0],), generator=generator, device=gen_device).to(x_start.device)
    t = torch.from_numpy(steps).to(x_start.device)[index]
    prev_t = None if num_inference_steps is None else torch.from_numpy(previous).to(x_start.device)[index]
    x_t = scheduler.add_noise(x_start, t, generator=generator)
    return len(steps) * scheduler.compute_loss(model_fn(x_t, t), x_start, x_t, t, prev_t) + prior


@torch.no_grad()
def diffusion_negative_elbo(
    denoiser,
    scheduler,
    input_ids: torch.LongTensor,
    batch_size: int = 32,
    estimate: bool = False,
    generator: Optional[torch.Generator] = None,
    timesteps_per_batch: int = 8,
    repetitions: int = 1,
    progress: bool = False,
    num_inference_steps: Optional[int] = None,
) -> torch.DoubleTensor:
    """
    The negative ELBO in nats of each example under a diffusion denoiser, for the sampler with
    `num_inference_steps` steps (default T: the full-T bound).

    Args:
        denoiser: a denoiser such as [`MultinomialTransformer`]: `denoiser(x_t, t).sample` are logits over x_0.
        scheduler ([`MultinomialScheduler`]): the diffusion process it was trained with.
        input_ids (`torch.LongTensor` of shape `(N, ...)`): the examples.
        batch_size (`int`): examples per pass.
        estimate (`bool`): the cheap unbiased one-t estimate instead of all T terms.
        generator (`torch.Generator`, *optional*): for the draws of x_t (and of t when estimating).
        timesteps_per_batch (`int`): timesteps sharing one denoiser call in the full bound (memory knob).
        repetitions (`int`): with `estimate`, average this many independent one-t estimates per example (the original
            code's `--repetitions`).
        progress (`bool`): show a progress bar over batches.
        num_inference_steps (`int`, *optional*): S in `[1, T]`: the bound of the S-step sampler (see
            [`negative_elbo`]).

    Raises:
        ValueError: If `batch_size`, `timesteps_per_batch` or `repetitions` is not a positive integer,
            `num_inference_steps` is outside `[1, T]`, or `input_ids` holds no example.
    """
    check_count("batch_size", batch_size)
    check_count("timesteps_per_batch", timesteps_per_batch)
    check_count("repetitions", repetitions)
    _check_examples("input_ids", input_ids)
    sampler_steps(scheduler, num_inference_steps)  # checks the number before any work
    was_training = denoiser.training
    denoiser.eval()
    device = next(denoiser.parameters()).device

    def model_fn(x_t, t):
        return denoiser(x_t, t).sample.float()

    batches = range(0, input_ids.shape[0], batch_size)
    if progress:
        batches = tqdm(batches, desc="negative ELBO")
    results = []
    for start in batches:
        x = input_ids[start : start + batch_size].to(device)
        if estimate:
            draws = [negative_elbo_estimate(model_fn, scheduler, x, generator, num_inference_steps).double()
                     for _ in range(repetitions)]
            results.append(torch.stack(draws).mean(0).cpu())
        else:
            results.append(negative_elbo(model_fn, scheduler, x, generator, timesteps_per_batch,
                                         num_inference_steps).cpu())
    denoiser.train(was_training)
    return torch.cat(results)


def bits_per_unit(negative_log_likelihoods: torch.Tensor, units_per_example: int, unit: str = "character",
                  total_units: Optional[int] = None) -> dict:
    """Aggregate per-example nats with the bits-per-unit metric; returns its dict (`bpc`, `bpp` or `bpd` key).
    `total_units`, when given, is the number of units of all examples together, for examples whose tokens do not
    cover one unit each (the characters of subword tokens): the total nats are then normalised by it."""
    check_count("units_per_example", units_per_example)
    if total_units is not None:
        check_count("total_units", total_units)
    metric = load_bits_per_dim(unit)
    nll = [float(v) for v in negative_log_likelihoods]
    bad = [(i, v) for i, v in enumerate(nll) if not math.isfinite(v)]
    if bad:
        raise ValueError(
            f"a negative log-likelihood is not finite: {bad[0][1]} at example {bad[0][0]} ({len(bad)} of {len(nll)})"
        )
    if total_units is not None:
        return metric.compute(negative_log_likelihoods=[math.fsum(nll)], num_units=[total_units])
    return metric.compute(negative_log_likelihoods=nll, num_units=[units_per_example] * len(nll))


@torch.no_grad()
def flow_negative_log_likelihood(
    model,
    input_ids: torch.Tensor,
    batch_size: int = 32,
    num_samples: int = 1,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
) -> torch.Tensor:
    """
    Per-example negative importance-weighted bound -IWBO_k (k = `num_samples`; k = 1 is the negative ELBO), in nats,
    float64, shape `(N,)`, of any model with `log_likelihood(input_ids, num_samples, generator)` (the argmax flows,
    dequantization baselines and VAEs). Evaluated in eval mode, `batch_size` examples at a time.
    """
    check_count("batch_size", batch_size)
    check_count("num_samples", num_samples)
    _check_examples("input_ids", input_ids)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results = []
    for start in tqdm(range(0, input_ids.shape[0], batch_size), disable=not progress, desc="Bound"):
        x = input_ids[start:start + batch_size].to(device)
        results.append(-model.log_likelihood(x, num_samples=num_samples, generator=generator).double().cpu())
    model.train(was_training)
    return torch.cat(results)
