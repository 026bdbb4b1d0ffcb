# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Multinomial diffusion on the shared training loop: the objective (the math is the scheduler's) and the run."""

import argparse
import json
import math
import os
from typing import Any, Callable, Dict, Optional

import torch

from ..evaluation import bits_per_unit, diffusion_negative_elbo
from ..schedulers import ImportanceTimestepSampler, MultinomialScheduler
from .hub import checkpoint_pusher, push_training_output, warn_if_offline
from .trainer import TrainingConfig, train_loop

LN2 = math.log(2.0)


class DiffusionObjective:
    """
    The multinomial diffusion training loss in nats per unit (character, pixel): `mean_b(L_t / q(t) + prior KL) / units`,
    an unbiased estimate of the negative ELBO, with t drawn by an [`ImportanceTimestepSampler`]. Shared by the text and
    segmentation scripts; `batch["input_ids"]` holds the clean data x_0 of any shape `(B, ...)`.

    `aux_loss_weight` adds that multiple of -log p(x_0 | x_t) of the reverse jump straight to the data
    (`scheduler.jump_to_start_nll`, nats per unit), an auxiliary loss with the same optimum as the ELBO; the logged
    `loss` and `bits_name` (`"bpc"` or `"bpp"`) are always the pure negative-ELBO estimate.

    Each process draws t and the noise from its own generator, seeded with `seed + process_index`; the sampler is fed
    the (t, L_t) of all processes (gathered), so every process holds the same history. Both are in `state_dict`.
    """

    def __init__(
        self,
        scheduler: MultinomialScheduler,
        seed: int = 0,
        sampler: Optional[ImportanceTimestepSampler] = None,
        aux_loss_weight: float = 0.0,
        bits_name: str = "bpc",
    ):
        self.scheduler = scheduler
        self.aux_loss_weight = aux_loss_weight
        self.bits_name = bits_name
        self.sampler = sampler or ImportanceTimestepSampler(scheduler.config.num_train_timesteps)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def setup(self, accelerator) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + accelerator.process_index)

    def __call__(self, model, batch, accelerator):
        x_start = batch["input_ids"]
        batch_size = x_start.shape[0]
        units = x_start[0].numel()
        t, pt = self.sampler.sample(batch_size, self.generator, device=x_start.device)
        x_t = self.scheduler.add_noise(x_start, t, self.generator)
        logits = model(x_t, t).sample
        loss_t = self.scheduler.compute_loss(logits.float(), x_start, x_t, t)
        prior = self.scheduler.prior_kl(x_start)
        elbo_loss = (loss_t / pt + prior).mean() / units
        loss = elbo_loss
        logs = {}
        if self.aux_loss_weight:
            x0_nll = self.scheduler.jump_to_start_nll(logits.float(), x_start, x_t, t).mean() / units
            loss = loss + self.aux_loss_weight * x0_nll
            logs["x0_nll"] = x0_nll.detach()

        all_t, all_loss_t = accelerator.gather((t, loss_t.detach()))
        self.sampler.update(all_t, all_loss_t)
        nats = elbo_loss.detach()
        return loss, {"loss": nats, self.bits_name: nats / LN2, **logs}

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])


BITS_NAMES = {"character": "bpc", "pixel": "bpp"}


def validation_bits_estimate(model, scheduler, dataset, num_examples: int, unit: str, seed: int = 0) -> float:
    """The scheduler's one-t unbiased negative-ELBO estimate on the first `num_examples` rows, in bits per unit."""
    input_ids = dataset[: min(num_examples, len(dataset))]["input_ids"]
    nll = diffusion_negative_elbo(model, scheduler, input_ids, estimate=True, generator=torch.Generator().manual_seed(seed))
    return bits_per_unit(nll, input_ids[0].numel(), unit)[BITS_NAMES[unit]]


def train_diffusion(
    args: argparse.Namespace,
    config: TrainingConfig,
    accelerator,
    data,
    pipeline,
    unit: str,
    write_model_card: Callable[[argparse.Namespace, Dict[str, Any], list], Any],
    card_output_type: Optional[str] = None,
) -> Dict[str, Any]:
    """
    Train `pipeline.denoiser` on `data["train"]` with the shared loop (`config`, `accelerator` from
    [`make_accelerator`]) and, on the main process, save the pipeline to
    `args.output_dir` with `train_results.json` and the model card (`write_model_card(args, stats, samples)`, the samples
    drawn with `output_type=card_output_type`, the pipeline's default when None).

    With `args.push_to_hub`, the main process then uploads `args.output_dir` (and its remote-code export, to the
    branch `remote-code`) with [`push_training_output`]; with `args.push_checkpoints` each checkpoint too (see
    `hf_multinomial.training.hub`). A failed final push raises a `RuntimeError` once everything is saved locally.

    Returns the results dict (on every process): output_dir, global_step, epochs, train_time_s, stopped_early, the
    training loss in nats and bits per `unit` (mean of the last 10% of steps), the one-t validation estimate, and
    history (per-step logs of this run).
    """
    bits = BITS_NAMES[unit]
    scheduler = pipeline.scheduler
    warn_if_offline(args)
    objective = DiffusionObjective(scheduler, seed=args.seed, aux_loss_weight=args.aux_loss_weight or 0.0, bits_name=bits)
    result = train_loop(pipeline.denoiser, data["train"], objective, config, accelerator=accelerator,
                        on_checkpoint=checkpoint_pusher(args, accelerator.is_main_process))

    global_batch = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    stats = result.summary(args.output_dir, len(data["train"]), global_batch, bits)
    stats[f"validation_{bits}_estimate"] = None
    if accelerator.is_main_process:
        pipeline.denoiser = result.model.eval()
        if args.num_validation_sequences > 0 and len(data["validation"]):
            stats["num_validation_examples"] = min(args.num_validation_sequences, len(data["validation"]))
            stats[f"validation_{bits}_estimate"] = validation_bits_estimate(
                pipeline.denoiser, scheduler, data["validation"], args.num_validation_sequences, unit, seed=args.seed
            )
        pipeline.save_pretrained(args.output_dir)
        samples = []
        if args.num_card_samples > 0:
            pipeline.set_progress_bar_config(disable=True)
            steps = min(args.card_inference_steps or scheduler.config.num_train_timesteps, scheduler.config.num_train_timesteps)
            samples = pipeline(batch_size=args.num_card_samples, num_inference_steps=steps,
                               output_type=card_output_type, generator=torch.Generator().manual_seed(args.seed)).samples
        with open(os.path.join(args.output_dir, "train_results.json"), "w") as f:
            json.dump({k: v for k, v in stats.items() if k != "history"}, f, indent=2)
        write_model_card(args, stats, samples)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if getattr(args, "push_to_hub", False) and accelerator.is_main_process:
        push_training_output(args, result.global_step, export_remote_code=True)
    return stats


def print_results(results: Dict[str, Any]) -> None:
    """Print the results of a run (without its history) as one JSON line, on the main process only."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in results.items() if k != "history"}))
