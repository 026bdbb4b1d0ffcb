# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Flows (argmax flows, dequantization baselines, VAEs) on the shared run: the objective and the family.

Every such model is a transformers `PreTrainedModel` whose `forward(input_ids, generator=...)` returns the negative
bound in nats per unit as `loss`, with `log_likelihood(input_ids, num_samples, generator)` and
`sample(batch_size, generator)`.
"""

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..evaluation import bits_per_unit, flow_negative_log_likelihood
from ..metrics import UNIT_KEYS
from .objective import SeededObjective


class FlowObjective(SeededObjective):
    """The negative bound -E_q[log p(v) - log q(v | x)] in nats per unit (the model's `loss`), with v ~ q(v | x) drawn
    from the objective's per-process generator."""

    def __call__(self, model, batch, accelerator):
        loss = model(batch["input_ids"], generator=self.generator).loss
        return loss, self.logs(loss, batch)


@dataclass
class FlowModel:
    """What a flow task builds: the model, and the vocabulary that turns its samples into text (None for maps)."""

    model: Any
    vocabulary: Optional[Any] = None


class FlowFamily:
    """How a flow task trains, validates, saves and samples: the loop trains `FlowModel.model` with
    [`FlowObjective`], validation is the ELBO (one draw of q(v | x)), and the saved folder holds the vocabulary too."""

    export_remote_code = False  # the saved folder already holds auto_map and the modeling files

    def objective(self, flow: FlowModel, arguments, bits_name: str) -> FlowObjective:
        return FlowObjective(seed=arguments.training.seed, bits_name=bits_name)

    def trainable(self, flow: FlowModel):
        return flow.model

    def with_trained(self, flow: FlowModel, model) -> FlowModel:
        flow.model = model
        return flow

    def validation_key(self, bits_name: str) -> str:
        return f"validation_{bits_name}"

    def validation_bits(self, flow: FlowModel, input_ids, unit: str, seed: int, num_units: Optional[int] = None,
                        num_samples: int = 1, batch_size: int = 32) -> float:
        """The bound of `input_ids` (the ELBO for `num_samples` = 1, else the IWBO), in bits per unit (`num_units`
        in all; default one per token)."""
        generator = torch.Generator(device=flow.model.device).manual_seed(seed)
        nll = flow_negative_log_likelihood(flow.model, input_ids, batch_size=batch_size, num_samples=num_samples,
                                           generator=generator)
        return bits_per_unit(nll, input_ids[0].numel(), unit, total_units=num_units)[UNIT_KEYS[unit]]

    def save(self, flow: FlowModel, output_dir: str) -> None:
        flow.model.save_pretrained(output_dir)
        if flow.vocabulary is not None:
            flow.vocabulary.save_pretrained(output_dir)

    def samples(self, flow: FlowModel, arguments) -> list:
        generator = torch.Generator(device=flow.model.device).manual_seed(arguments.training.seed)
        samples = flow.model.sample(arguments.output.num_card_samples, generator=generator).cpu()
        return flow.vocabulary.batch_decode(samples) if flow.vocabulary is not None else samples
