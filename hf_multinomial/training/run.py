# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
One run for every training task: what a task declares ([`Task`]), and [`train`], which does everything around the
loop in the same order for all of them.

    from hf_multinomial.training import run, text_diffusion
    arguments = run.parse_arguments(text_diffusion.TASK, ["--preset", "small", "--max_train_time_s", "180"])
    results = run.train(text_diffusion.TASK, arguments)

The order: accelerator; data (main process first); the model (after `set_seed`, the same on every process); the
loop; then, on the main process, the validation bound, the task's own evaluation, `save_pretrained`, the card's
samples, `train_results.json` (written once), the model card; then the Hub push.
"""

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from accelerate.utils import set_seed

from ..metrics import UNIT_KEYS
from .arguments import Arguments, parse_arguments
from .hub import checkpoint_pusher, push_training_output, warn_if_offline
from .trainer import TrainingResult, make_accelerator, train_loop

__all__ = ["Task", "train", "parse_arguments", "print_results"]


@dataclass(frozen=True)
class Task:
    """
    A training task, declared: its arguments and presets, how its data is loaded and its model built, an optional
    evaluation after training, and its model card. Everything else is the run's.

    Attributes:
        name: the task's id (tracker project, e.g. `"text_diffusion"`).
        script: the script that launches it, for the card's command (e.g. `"train_text_diffusion.py"`).
        description: the `--help` text.
        model_arguments: the dataclass of its model flags.
        data_arguments: the dataclass of its data flags (`TextDataArguments` or `MapDataArguments`).
        presets: `{name: {flag: value}}`, over every dataclass of the run; `default_preset` is one of them.
        default_output_dir: `--output_dir` when not given.
        unit: `"character"` or `"pixel"`: what the bounds are per.
        family: how models of this kind train, validate, save and sample ([`DiffusionFamily`] or [`FlowFamily`]).
        load_data: `(arguments) -> (DatasetDict with input_ids, extra)`; `extra` (e.g. the vocabulary) goes to `build`.
        build: `(arguments, extra) -> model`: what `family` trains (a pipeline, or a flow with its vocabulary).
        card: `(arguments, results, samples) -> huggingface_hub.ModelCard`.
        evaluate: `(arguments, model, data) -> dict`, optional: held-out figures added to the results.
    """

    name: str
    script: str
    description: str
    model_arguments: type
    data_arguments: type
    presets: Dict[str, Dict[str, Any]]
    default_preset: str
    default_output_dir: str
    unit: str
    family: Any
    load_data: Callable
    build: Callable
    card: Callable
    evaluate: Optional[Callable] = None

    @property
    def bits_name(self) -> str:
        return UNIT_KEYS[self.unit]


def summary(result: TrainingResult, output_dir: str, bits_name: str) -> Dict[str, Any]:
    """The figures every training run reports: steps, epochs, time, the training loss (nats) and its value in bits
    (`bits_name`) as the mean of the last 10% of steps, the parameter count, applied hyperparameter changes, and
    the per-step history of this run."""
    tail = result.history[-max(1, len(result.history) // 10):]
    return {
        "output_dir": output_dir,
        "global_step": result.global_step,
        "epochs": round(result.global_step / result.steps_per_epoch, 4),
        "train_time_s": round(result.train_time_s, 2),
        "stopped_early": result.stopped_early,
        "train_loss": sum(h["loss"] for h in tail) / len(tail) if tail else None,
        f"train_{bits_name}": sum(h[bits_name] for h in tail) / len(tail) if tail else None,
        "num_parameters": sum(p.numel() for p in result.model.parameters()),
        "hyperparameter_changes": result.hyperparameter_changes,
        "history": result.history,
    }


def train(task: Task, arguments: Arguments) -> Dict[str, Any]:
    """
    Train `task` with `arguments` (from [`parse_arguments`]) and, on the main process, write the model with
    `save_pretrained` to the output folder with `train_results.json` and the model card; with `--push_to_hub`,
    upload it. Returns the results (on every process; the held-out figures on the main process): output_dir,
    global_step, epochs, train_time_s, stopped_early, the training loss in nats and bits, the validation bound,
    the task's evaluation, history.
    """
    config = arguments.training
    family = task.family
    accelerator = make_accelerator(config)
    warn_if_offline(arguments.hub_params())
    with accelerator.main_process_first():
        data, extra = task.load_data(arguments)
    set_seed(config.seed)  # identical initial weights on every process
    model = task.build(arguments, extra)
    objective = family.objective(model, arguments, task.bits_name)
    result = train_loop(family.trainable(model), data["train"], objective, config, accelerator=accelerator,
                        on_checkpoint=checkpoint_pusher(arguments.hub_params(), accelerator.is_main_process),
                        recorded_arguments=arguments.recorded())
    results = summary(result, config.output_dir, task.bits_name)
    if accelerator.is_main_process:
        model = family.with_trained(model, result.model.eval())
        results.update(_validation(task, arguments, model, data))
        if task.evaluate is not None:
            results.update(task.evaluate(arguments, model, data))
        family.save(model, config.output_dir)
        samples = family.samples(model, arguments) if arguments.output.num_card_samples > 0 else []
        with open(os.path.join(config.output_dir, "train_results.json"), "w") as f:
            json.dump({"preset": arguments.preset, **{k: v for k, v in results.items() if k != "history"}}, f,
                      indent=2)
        task.card(arguments, results, samples).save(os.path.join(config.output_dir, "README.md"))
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if arguments.output.push_to_hub and accelerator.is_main_process:
        push_training_output(arguments.hub_params(), result.global_step,
                             export_remote_code=family.export_remote_code)
    return results


def _validation(task: Task, arguments: Arguments, model, data) -> Dict[str, Any]:
    """The family's validation bound on the first `num_validation_sequences` validation rows (none: None)."""
    key = task.family.validation_key(task.bits_name)
    count = min(arguments.output.num_validation_sequences, len(data["validation"]))
    if count == 0:
        return {key: None}
    rows = data["validation"][:count]
    num_units = int(rows["num_characters"].sum()) if "num_characters" in rows else None
    return {key: task.family.validation_bits(model, rows["input_ids"], task.unit, arguments.training.seed,
                                             num_units=num_units),
            "num_validation_examples": count}


def print_results(results: Dict[str, Any]) -> None:
    """Print the results of a run (without its history) as one JSON line, on the main process only."""
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in results.items() if k != "history"}))


def main(task: Task, argv=None) -> None:
    """A training script's body: parse, train, print the results as the last line. A bad flag, or a run the
    training layer refuses (a used output folder, a damaged checkpoint, changed hyperparameters on resume), ends in
    one `error:` line on stderr and exit status 2."""
    import sys

    try:
        arguments = parse_arguments(task, argv)
        results = train(task, arguments)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"{task.script}: error: {message}", file=sys.stderr)
        sys.exit(2)
    print_results(results)
