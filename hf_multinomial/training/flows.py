# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Flows (argmax flows, dequantization baselines, VAEs) on the shared training loop: the objective and the run.

Every such model is a transformers `PreTrainedModel` whose `forward(input_ids, generator=...)` returns the negative
bound in nats per unit as `loss`, with `log_likelihood(input_ids, num_samples, generator)` and
`sample(batch_size, generator)`.
"""

import argparse
import json
import math
import os
from typing import Any, Callable, Dict, Iterable, Optional

import torch

from ..evaluation import bits_per_unit, flow_negative_log_likelihood
from .hub import checkpoint_pusher, push_training_output, warn_if_offline
from .trainer import TrainingConfig, train_loop

LN2 = math.log(2.0)
BITS_NAMES = {"character": "bpc", "pixel": "bpp"}


class FlowObjective:
    """
    The negative bound -E_q[log p(v) - log q(v | x)] in nats per unit (the model's `loss`); logged as `loss` and in
    bits as `bits_name`. Each process draws v ~ q(v | x) from its own generator, seeded with `seed + process_index`
    and checkpointed, so a resumed run continues the same draws.
    """

    def __init__(self, seed: int = 0, bits_name: str = "bpc"):
        self.seed = seed
        self.bits_name = bits_name
        self.generator = torch.Generator().manual_seed(seed)

    def setup(self, accelerator) -> None:
        self.generator = torch.Generator(device=accelerator.device).manual_seed(self.seed + accelerator.process_index)

    def __call__(self, model, batch, accelerator):
        loss = model(batch["input_ids"], generator=self.generator).loss
        nats = loss.detach()
        return loss, {"loss": nats, self.bits_name: nats / LN2}

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def flow_bound(num_samples: int = 1) -> str:
    """How a flow's bound was computed, for the `model-index` results (`bits_eval_result(..., bound=...)`): the ELBO
    with one draw of q(v | x), or the importance-weighted bound with `num_samples` draws."""
    if num_samples == 1:
        return "ELBO, 1 draw of q(v|x)"
    return f"IWBO, k={num_samples} draws of q(v|x)"


def validation_bits(model, dataset, num_examples: int, unit: str, num_samples: int = 1, seed: int = 0) -> float:
    """The bound (ELBO for `num_samples` = 1, else IWBO) on the first `num_examples` rows, in bits per unit."""
    input_ids = dataset[: min(num_examples, len(dataset))]["input_ids"]
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    nll = flow_negative_log_likelihood(model, input_ids, num_samples=num_samples, generator=generator)
    return bits_per_unit(nll, input_ids[0].numel(), unit)[BITS_NAMES[unit]]


def train_flow(
    args: argparse.Namespace,
    config: TrainingConfig,
    accelerator,
    data,
    model,
    unit: str,
    write_model_card: Callable[[argparse.Namespace, Dict[str, Any], list], Any],
    decode_samples: Optional[Callable[[torch.Tensor], list]] = None,
    save_with_model: Iterable = (),
) -> Dict[str, Any]:
    """
    Train `model` on `data["train"]` with the shared loop and, on the main process, save it with `save_pretrained`
    to `args.output_dir` (with every object of `save_with_model`, e.g. the vocabulary), `train_results.json` and the
    model card (`write_model_card(args, stats, samples)`; the `args.num_card_samples` samples are passed through
    `decode_samples`, e.g. to strings).

    With `args.push_to_hub`, the main process then uploads `args.output_dir` to the main branch of
    `args.hub_model_id` with [`push_training_output`] (the saved folder already holds `auto_map` and the modeling
    files, so `AutoModel.from_pretrained(repo, trust_remote_code=True)` works from it without hf-multinomial); with
    `args.push_checkpoints` each checkpoint too (see `hf_multinomial.training.hub`). A failed final push raises a
    `RuntimeError` once everything is saved locally.

    Returns the results dict (on every process): the [`TrainingResult.summary`] figures and
    `validation_{bpc|bpp}` (the ELBO on `num_validation_examples` = at most `args.num_validation_sequences`
    validation rows).
    """
    bits = BITS_NAMES[unit]
    warn_if_offline(args)
    result = train_loop(model, data["train"], FlowObjective(seed=args.seed, bits_name=bits), config,
                        accelerator=accelerator, on_checkpoint=checkpoint_pusher(args, accelerator.is_main_process))
    global_batch = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    stats = result.summary(args.output_dir, len(data["train"]), global_batch, bits)
    stats[f"validation_{bits}"] = None
    if accelerator.is_main_process:
        model = result.model.eval()
        if args.num_validation_sequences > 0 and len(data["validation"]):
            stats["num_validation_examples"] = min(args.num_validation_sequences, len(data["validation"]))
            stats[f"validation_{bits}"] = validation_bits(model, data["validation"], args.num_validation_sequences,
                                                          unit, seed=args.seed)
        model.save_pretrained(args.output_dir)
        for extra in save_with_model:
            extra.save_pretrained(args.output_dir)
        samples = []
        if args.num_card_samples > 0:
            generator = torch.Generator(device=model.device).manual_seed(args.seed)
            samples = model.sample(args.num_card_samples, generator=generator).cpu()
            samples = decode_samples(samples) if decode_samples is not None else samples.tolist()
        with open(os.path.join(args.output_dir, "train_results.json"), "w") as f:
            json.dump({k: v for k, v in stats.items() if k != "history"}, f, indent=2)
        write_model_card(args, stats, samples)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if getattr(args, "push_to_hub", False) and accelerator.is_main_process:
        push_training_output(args, result.global_step)
    return stats
