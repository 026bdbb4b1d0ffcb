# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Multinomial diffusion on the shared run: the objective (the math is the scheduler's) and the family."""

from typing import Optional

import torch

from ..evaluation import bits_per_unit, diffusion_negative_elbo
from ..metrics import UNIT_KEYS
from ..schedulers import ImportanceTimestepSampler, MultinomialScheduler
from .objective import SeededObjective


class DiffusionObjective(SeededObjective):
    """
    The multinomial diffusion training loss in nats per unit (character, pixel): `mean_b(L_t / q(t) + prior KL) / units`,
    an unbiased estimate of the negative ELBO, with t drawn by an [`ImportanceTimestepSampler`]. Shared by the text and
    segmentation tasks; `batch["input_ids"]` holds the clean data x_0 of any shape `(B, ...)`.

    `aux_loss_weight` adds that multiple of -log p(x_0 | x_t) of the reverse jump straight to the data
    (`scheduler.jump_to_start_nll`, nats per unit), an auxiliary loss with the same optimum as the ELBO; the logged
    `loss` and `bits_name` (`"bpc"` or `"bpp"`) are always the pure negative-ELBO estimate.

    The sampler is fed the (t, L_t) of all processes (gathered), so every process holds the same history; it is
    checkpointed with the generator.
    """

    def __init__(
        self,
        scheduler: MultinomialScheduler,
        seed: int = 0,
        sampler: Optional[ImportanceTimestepSampler] = None,
        aux_loss_weight: float = 0.0,
        bits_name: str = "bpc",
    ):
        super().__init__(seed, bits_name)
        self.scheduler = scheduler
        self.aux_loss_weight = aux_loss_weight
        self.sampler = sampler or ImportanceTimestepSampler(scheduler.config.num_train_timesteps)

    def __call__(self, model, batch, accelerator):
        x_start = batch["input_ids"]
        units = x_start[0].numel()
        t, pt = self.sampler.sample(x_start.shape[0], self.generator, device=x_start.device)
        x_t = self.scheduler.add_noise(x_start, t, self.generator)
        logits = model(x_t, t).sample.float()
        terms = self.scheduler.compute_loss_terms(logits, x_start, x_t, t)  # one validation for all three terms
        loss_t = terms.loss
        elbo_loss = (loss_t / pt + terms.prior_kl).mean() / units
        loss, extra = elbo_loss, {}
        if self.aux_loss_weight:
            x0_nll = terms.jump_nll.mean() / units
            loss = loss + self.aux_loss_weight * x0_nll
            extra["x0_nll"] = x0_nll.detach()
        self.sampler.update(*accelerator.gather((t, loss_t.detach())))
        return loss, self.logs(elbo_loss, batch, **extra)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), **super().state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        super().load_state_dict(state)


class DiffusionFamily:
    """How a diffusion task trains, validates, saves and samples: its model is a [`DiscreteDiffusionPipeline`],
    the loop trains its denoiser with [`DiffusionObjective`], validation is the one-t estimate of the negative ELBO,
    and the Hub gets a remote-code export too. `card_output_type`: the pipeline output type of the card's samples
    (None: the pipeline's default)."""

    export_remote_code = True

    def __init__(self, card_output_type: Optional[str] = None):
        self.card_output_type = card_output_type

    def objective(self, pipeline, arguments, bits_name: str) -> DiffusionObjective:
        return DiffusionObjective(pipeline.scheduler, seed=arguments.training.seed,
                                  aux_loss_weight=arguments.model.aux_loss_weight, bits_name=bits_name)

    def trainable(self, pipeline):
        return pipeline.denoiser

    def with_trained(self, pipeline, denoiser):
        pipeline.denoiser = denoiser
        return pipeline

    def validation_key(self, bits_name: str) -> str:
        return f"validation_{bits_name}_estimate"

    def validation_bits(self, pipeline, input_ids, unit: str, seed: int, num_units: Optional[int] = None) -> float:
        """The scheduler's one-t unbiased negative-ELBO estimate of `input_ids`, in bits per unit (`num_units` in
        all, e.g. the characters that subword tokens cover; default one per token)."""
        nll = diffusion_negative_elbo(pipeline.denoiser, pipeline.scheduler, input_ids, estimate=True,
                                      generator=torch.Generator().manual_seed(seed))
        return bits_per_unit(nll, input_ids[0].numel(), unit, total_units=num_units)[UNIT_KEYS[unit]]

    def save(self, pipeline, output_dir: str) -> None:
        pipeline.save_pretrained(output_dir)

    def samples(self, pipeline, arguments) -> list:
        T = pipeline.scheduler.config.num_train_timesteps
        pipeline.set_progress_bar_config(disable=True)
        return pipeline(batch_size=arguments.output.num_card_samples,
                        num_inference_steps=min(arguments.output.card_inference_steps, T),
                        output_type=self.card_output_type,
                        generator=torch.Generator().manual_seed(arguments.training.seed)).samples
