# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
The arguments of a training run: `HfArgumentParser` dataclasses parsed once, presets applied in one place, and the
launch command that model cards show.

A run's [`Arguments`] hold four dataclasses: the task's model arguments, its data arguments (`hf_multinomial.data`),
the loop's [`TrainingConfig`] and the [`OutputArguments`] (what happens after training, and the Hub). A preset is a
dict of defaults over all four: a flag given on the command line always wins over the preset, the preset over the
dataclass default.
"""

import argparse
import dataclasses
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from transformers import HfArgumentParser

from ..checks import check_count

from .trainer import TrainingConfig

SECRET_FLAGS = ("--hub_token",)
# Groups of flags that say the same thing in different units: one given on the command line replaces the preset's
# value of the others.
ALTERNATIVE_FLAGS = (("lr_warmup_steps", "lr_warmup_epochs"),)


@dataclass
class OutputArguments:
    """What happens after training (validation, samples in the card) and the Hugging Face Hub upload."""

    num_validation_sequences: int = field(default=64, metadata={
        "help": "Validation sequences or maps for the bound written to train_results.json and the card (0: skip)."})
    num_card_samples: int = field(default=2, metadata={"help": "Samples shown in the model card (0: none)."})
    card_inference_steps: int = field(default=100, metadata={
        "help": "Diffusion sampling steps for them (at most T)."})
    push_to_hub: bool = field(default=False, metadata={
        "help": "Upload the final model (and its card) to the Hub at the end of training."})
    hub_model_id: Optional[str] = field(default=None, metadata={
        "help": '"user/name" or "org/name"; unset: the output folder\'s name, in your namespace.'})
    hub_token: Optional[str] = field(default=None, metadata={
        "help": "A token with write access; unset: the saved login or HF_TOKEN."})
    hub_private_repo: bool = field(default=False, metadata={"help": "Create the repository as private."})
    push_checkpoints: bool = field(default=False, metadata={
        "help": "With --push_to_hub: also upload each checkpoint, to the folder checkpoint-STEP."})

    def __post_init__(self):
        for name in ("num_validation_sequences", "num_card_samples"):
            check_count(name, getattr(self, name), minimum=0)
        check_count("card_inference_steps", self.card_inference_steps)
        if self.push_checkpoints and not self.push_to_hub:
            raise ValueError("--push_checkpoints needs --push_to_hub")


@dataclass
class Arguments:
    """Everything a training run was given, parsed once (see [`parse_arguments`])."""

    preset: str
    model: Any
    data: Any
    training: TrainingConfig
    output: OutputArguments
    command_line: Optional[List[str]] = None  # the script and its flags, for the model card

    @property
    def parts(self):
        return (self.model, self.data, self.training, self.output)

    def get(self, name: str):
        """The value of the flag `name`, whichever dataclass holds it."""
        if name == "preset":
            return self.preset
        for part in self.parts:
            if hasattr(part, name):
                return getattr(part, name)
        raise KeyError(f"No argument named {name!r}")

    @property
    def output_dir(self) -> str:
        return self.training.output_dir

    def hub_params(self) -> Dict[str, Any]:
        """What `hf_multinomial.training.hub` reads: the Hub flags and the output folder."""
        return {**dataclasses.asdict(self.output), "output_dir": self.training.output_dir}

    def recorded(self) -> Dict[str, Any]:
        """The model and data arguments a checkpoint records: a resume whose values differ is refused. File and
        folder locations are left out (the same data may be mounted elsewhere on resume), and so are a dataclass's
        `EVALUATION_FIELDS` (what is evaluated after training)."""
        recorded = {}
        for part in (self.model, self.data):
            skipped = getattr(part, "EVALUATION_FIELDS", ())
            for key, value in dataclasses.asdict(part).items():
                if key not in skipped and not key.endswith(("_dir", "_file", "_root")):
                    recorded[key] = list(value) if isinstance(value, tuple) else value
        return recorded


def _explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set:
    """The destinations of the flags that `argv` gives."""
    given = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    return {action.dest for action in parser._actions if given.intersection(action.option_strings)}


def parse_arguments(task, argv: Optional[Sequence[str]] = None) -> Arguments:
    """
    Parse `argv` (`sys.argv[1:]` when None) into the [`Arguments`] of `task` (a [`~hf_multinomial.training.run.Task`]):
    `--preset NAME` picks one of `task.presets` (default `task.default_preset`), whose values become the defaults of
    the flags; then every dataclass checks its values (a bad one raises `ValueError` naming it).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((task.model_arguments, task.data_arguments, TrainingConfig, OutputArguments),
                              description=task.description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", choices=sorted(task.presets), default=task.default_preset,
                        help="Hyperparameter set; flags given on the command line override its values.")
    parser.set_defaults(output_dir=task.default_output_dir, tracker_project_name=task.name)
    preset_name = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**preset_defaults(parser, task.presets[preset_name], _explicit_dests(parser, argv)))
    model, data, training, output, rest = parser.parse_args_into_dataclasses(args=argv)
    return Arguments(preset=rest.preset, model=model, data=data, training=training, output=output,
                     command_line=[task.script, *argv])


def preset_defaults(parser: argparse.ArgumentParser, preset: Dict[str, Any], explicit: set) -> Dict[str, Any]:
    """The preset's values as parser defaults: every key must be a flag of `parser`; a flag of `ALTERNATIVE_FLAGS`
    given on the command line drops the preset's value of its alternatives."""
    dests = {action.dest for action in parser._actions}
    unknown = sorted(set(preset) - dests)
    if unknown:
        raise ValueError(f"The preset sets unknown arguments: {unknown}")
    dropped = set()
    for group in ALTERNATIVE_FLAGS:
        if explicit.intersection(group):
            dropped.update(set(group) - explicit)
    return {key: (list(value) if isinstance(value, tuple) else value) for key, value in preset.items()
            if key not in dropped}


def launch_command(arguments: Arguments) -> Optional[str]:
    """The `accelerate launch` command that reproduces the run, for model cards (None when not parsed from argv);
    the values of `SECRET_FLAGS` (the Hub token) are replaced by `***`."""
    command_line = list(arguments.command_line or [])
    for i, arg in enumerate(command_line):
        if arg in SECRET_FLAGS and i + 1 < len(command_line):
            command_line[i + 1] = "***"
        elif arg.split("=", 1)[0] in SECRET_FLAGS and "=" in arg:
            command_line[i] = arg.split("=", 1)[0] + "=***"
    return "accelerate launch " + " ".join(shlex.quote(a) for a in command_line) if command_line else None
