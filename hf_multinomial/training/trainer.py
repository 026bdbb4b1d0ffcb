# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
The one training loop of hf-multinomial, shared by every training task.

It knows nothing about diffusion, flows or text. It takes a model, a training dataset, an *objective* and a
[`TrainingConfig`], and does the rest with `accelerate`: Adam (or Adamax), warm-up then an exponential per-epoch
learning-rate decay (applied per optimizer step), gradient accumulation and clipping, mixed precision, optional EMA,
TensorBoard logging, a progress bar, atomic verified checkpoints and exact resumption.

The objective is any object with

- `objective(model, batch, accelerator) -> (loss, logs)`: the scalar loss to minimise for one micro-batch, and a dict
  of floats (or 0-dim tensors) to log. It may use `accelerator` for collectives (e.g. gathering per-example losses).
- `state_dict()` / `load_state_dict(state)`: its checkpointable state, saved **per process**
  (`objective_state_{process_index}.pt`), so each process may hold its own random state.
- `setup(accelerator)`: called once, before any checkpoint is loaded (e.g. to seed a per-process generator).

Exact resumption: the data order is a pure function of `(seed, epoch)`, so resuming at optimizer step `s` starts
reading at the micro-batch where step `s` left off (`accelerator.skip_first_batches`), without replaying anything.
Model, optimizer, learning-rate scheduler, EMA, every process's RNG states (`accelerator.save_state`) and objective
state are in the checkpoint, with a manifest of every file's size and SHA-256 that is checked before resuming.

Nothing is lost: a run refuses an `output_dir` that holds another run's checkpoints or model unless it resumes
(`resume_from_checkpoint`) or is told to replace them (`overwrite_output_dir`); `checkpoints_total_limit` only ever
removes checkpoints of the run itself; resuming with changed hyperparameters is refused unless
`allow_changed_hyperparameters`, which applies them and records them.
"""

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from ..checks import check_count

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE_NAME = "trainer_state.json"
OBJECTIVE_STATE_NAME = "objective_state_{}.pt"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
OPTIMIZERS = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}

# Files that mark a folder as holding a saved model or the results of a finished run.
SAVED_MODEL_FILES = ("model_index.json", "config.json", "train_results.json")


@dataclass
class TrainingConfig:
    """Hyperparameters of the generic loop (a task's own ones live with the task). Also the "training" flags of every
    training script (`HfArgumentParser`)."""

    output_dir: str = field(default="output", metadata={"help": "Where checkpoints, logs and the model go."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Start a new run in an output_dir that holds another run's checkpoints or model: they are removed."})
    seed: int = field(default=0, metadata={"help": "Seed of the initial weights, the data order and the noise."})
    train_batch_size: int = field(default=32, metadata={"help": "Examples per process and micro-batch."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate."})
    optimizer: str = field(default="adam", metadata={"help": "adam or adamax.", "choices": sorted(OPTIMIZERS)})
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    adam_weight_decay: float = 0.0
    lr_warmup_steps: Optional[int] = field(default=None, metadata={"help": "Linear warm-up, in optimizer steps."})
    lr_warmup_epochs: Optional[float] = field(default=None, metadata={
        "help": "Linear warm-up, in epochs (instead of --lr_warmup_steps)."})
    lr_decay_per_epoch: float = field(default=1.0, metadata={
        "help": "Multiply the learning rate by this once per epoch, smoothly per step."})
    max_train_steps: Optional[int] = field(default=None, metadata={
        "help": "Optimizer steps; overrides --num_train_epochs."})
    num_train_epochs: Optional[int] = field(default=1, metadata={"help": "Epochs, when no --max_train_steps."})
    max_train_time_s: Optional[float] = field(default=None, metadata={
        "help": "Wall-clock budget of the loop in seconds: stop (and checkpoint) once it is spent."})
    gradient_accumulation_steps: int = 1
    max_grad_norm: Optional[float] = field(default=1.0, metadata={"help": "Clip gradients to this norm (0: no clip)."})
    mixed_precision: str = field(default="no", metadata={"choices": ["no", "bf16", "fp16"]})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute activations in the backward pass: far less memory for about 10% more time."})
    use_ema: bool = False
    ema_decay: float = 0.9999
    checkpointing_steps: Optional[int] = field(default=500, metadata={"help": "Checkpoint every N optimizer steps."})
    checkpoints_total_limit: Optional[int] = field(default=None, metadata={
        "help": "Keep only this run's newest N checkpoints (never removes another run's)."})
    resume_from_checkpoint: Optional[str] = field(default=None, metadata={"help": '"latest" or a checkpoint folder.'})
    allow_changed_hyperparameters: bool = field(default=False, metadata={
        "help": "On resume, apply training hyperparameters that differ from the checkpoint's (learning rate, batch "
                "size, seed, processes, ...) and record them; without it such a resume is refused."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Worker processes of the training DataLoader."})
    report_to: str = field(default="tensorboard", metadata={"help": '"tensorboard" or "none".'})
    logging_dir: str = field(default="logs", metadata={"help": "Relative to output_dir."})
    tracker_project_name: str = "train"
    logging_steps: int = 1
    disable_progress_bar: bool = False

    def __post_init__(self):
        for name in ("train_batch_size", "gradient_accumulation_steps", "logging_steps"):
            check_count(name, getattr(self, name))
        for name in ("max_train_steps", "num_train_epochs", "checkpointing_steps", "checkpoints_total_limit"):
            check_count(name, getattr(self, name), optional=True)
        for name in ("lr_warmup_steps", "dataloader_num_workers"):
            check_count(name, getattr(self, name), optional=True, minimum=0)
        _check_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        _check_number("lr_decay_per_epoch", self.lr_decay_per_epoch, low=0.0, low_open=True)
        _check_number("adam_weight_decay", self.adam_weight_decay, low=0.0)
        _check_number("ema_decay", self.ema_decay, low=0.0, high=1.0)
        for name in ("lr_warmup_epochs", "max_grad_norm"):
            if getattr(self, name) is not None:
                _check_number(name, getattr(self, name), low=0.0)
        if self.max_train_time_s is not None:
            _check_number("max_train_time_s", self.max_train_time_s, low=0.0, low_open=True)
        if self.lr_warmup_steps is not None and self.lr_warmup_epochs is not None:
            raise ValueError(f"Give the warm-up in steps or in epochs, not both (lr_warmup_steps="
                             f"{self.lr_warmup_steps}, lr_warmup_epochs={self.lr_warmup_epochs})")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; expected one of {sorted(OPTIMIZERS)}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.max_train_steps is None and self.num_train_epochs is None and self.max_train_time_s is None:
            raise ValueError("The run has no end: give max_train_steps, num_train_epochs or max_train_time_s")


def _check_number(name: str, value, low: float, high: float = math.inf, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < low or value > high or (low_open and value == low):
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if high != math.inf else "")
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")


# Flags that say how long, where and how visibly a run goes, not what it learns: free to differ on resume.
RUN_CONTROL_KEYS = {
    "output_dir", "overwrite_output_dir", "max_train_steps", "num_train_epochs", "max_train_time_s",
    "checkpointing_steps", "checkpoints_total_limit", "resume_from_checkpoint", "allow_changed_hyperparameters",
    "dataloader_num_workers", "report_to", "logging_dir", "tracker_project_name", "logging_steps",
    "disable_progress_bar", "gradient_checkpointing",
}
# Training hyperparameters that cannot be changed at all on resume: the saved optimizer and EMA states assume them.
FIXED_ON_RESUME_KEYS = {"optimizer", "use_ema"}


@dataclass
class TrainingResult:
    """What [`train_loop`] returns (on every process). Call `accelerator.end_training()` once done with it."""

    model: torch.nn.Module  # unwrapped; holds the EMA weights when `use_ema`
    accelerator: Accelerator
    global_step: int
    epoch: int
    steps_per_epoch: int = 1
    history: List[Dict[str, float]] = field(default_factory=list)  # per optimizer step, this run only
    train_time_s: float = 0.0
    stopped_early: bool = False  # by max_train_time_s
    hyperparameter_changes: List[Dict[str, Any]] = field(default_factory=list)  # applied on resume, all resumes


# ---------------------------------------------------------------------------------------------- data order


class EpochBatchSampler(Sampler):
    """
    The micro-batches of one epoch, for all processes, as a pure function of `(seed, epoch)`: a permutation drawn
    from `torch.Generator().manual_seed(seed + epoch)` cut into `num_batches` batches of `batch_size`. Prepared by
    `accelerator.prepare`, process `p` of `n` takes batches `p, p + n, ...`, i.e. slice `p` of each global batch.
    """

    def __init__(self, dataset_len: int, batch_size: int, num_batches: int, seed: int, epoch: int):
        self.dataset_len, self.batch_size, self.num_batches = dataset_len, batch_size, num_batches
        self.seed, self.epoch = seed, epoch

    def __len__(self):
        return self.num_batches

    def __iter__(self):
        order = torch.randperm(self.dataset_len, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        for b in range(self.num_batches):
            yield order[b * self.batch_size : (b + 1) * self.batch_size].tolist()


# ---------------------------------------------------------------------------------------------- checkpoints


def list_checkpoints(output_dir: str, run_id: Optional[str] = None) -> List[str]:
    """Checkpoint folders `output_dir/checkpoint-STEP` that hold their completion marker (trainer_state.json),
    oldest first; with `run_id`, only the ones that run wrote. Temporary folders are ignored."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isfile(os.path.join(path, TRAINER_STATE_NAME)):
            if run_id is None or _read_trainer_state(path).get("run_id") == run_id:
                found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def _read_trainer_state(path: str) -> Dict[str, Any]:
    state_file = os.path.join(path, TRAINER_STATE_NAME)
    if not os.path.isfile(state_file):
        raise FileNotFoundError(f"{path!r} is not a complete checkpoint: {state_file} is missing")
    try:
        with open(state_file) as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"Checkpoint {path!r} is damaged: {state_file} cannot be read ({error})") from error


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(folder: str) -> Dict[str, Dict[str, Any]]:
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            files[os.path.relpath(path, folder)] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    return files


def verify_checkpoint(path: str) -> Dict[str, Any]:
    """
    Check that the checkpoint folder `path` is complete: its `trainer_state.json` reads, and every file of its
    manifest is there with the recorded size and SHA-256. Returns the trainer state.

    Raises:
        `FileNotFoundError`: the folder, its trainer state or one of its files is missing (the file is named).
        `ValueError`: a file is truncated or its content differs from what was written (the file is named).
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Checkpoint folder not found: {path!r}")
    state = _read_trainer_state(path)
    files = state.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"Checkpoint {path!r} has no file manifest in {TRAINER_STATE_NAME}; it was not written by "
                         "this version of hf-multinomial or was edited")
    for name, expected in files.items():
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            raise FileNotFoundError(f"Checkpoint {path!r} is incomplete: {name} is missing")
        size = os.path.getsize(file)
        if size != expected["size"]:
            raise ValueError(f"Checkpoint {path!r} is damaged: {name} has {size} bytes, {expected['size']} were "
                             "written (truncated?)")
        if _sha256(file) != expected["sha256"]:
            raise ValueError(f"Checkpoint {path!r} is damaged: the content of {name} differs from what was written")
    return state


def resolve_checkpoint(resume_from_checkpoint: Optional[str], output_dir: str) -> Optional[str]:
    """
    The folder to resume from, verified complete ([`verify_checkpoint`]): `"latest"` gives the newest
    `checkpoint-STEP` folder in `output_dir` (None when there is none), a path is that folder. A damaged newest
    checkpoint is refused rather than passed over for an older one; name an older one explicitly to resume from it.
    """
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        steps = sorted(int(m.group(1)) for m in map(_CHECKPOINT_RE.match, os.listdir(output_dir)) if m) \
            if os.path.isdir(output_dir) else []
        if not steps:
            return None
        path = os.path.join(output_dir, f"{CHECKPOINT_PREFIX}{steps[-1]}")
    else:
        path = resume_from_checkpoint
    try:
        verify_checkpoint(path)
    except (OSError, ValueError) as error:
        if resume_from_checkpoint == "latest":
            raise type(error)(f"{error}. Pass an older checkpoint folder to --resume_from_checkpoint to resume "
                              "from it instead") from error
        raise
    return path


def save_checkpoint(accelerator: Accelerator, objective, config: TrainingConfig, global_step: int, epoch: int,
                    run_state: Optional[Dict[str, Any]] = None) -> str:
    """
    Write `output_dir/checkpoint-STEP` atomically: everything goes to a hidden temporary folder first; once every
    process has written its part, the main process writes the manifest (`trainer_state.json`, with `run_state`:
    run id, recorded arguments, hyperparameter changes) and renames the folder into place, so a killed run never
    leaves a partial checkpoint. Then, with `checkpoints_total_limit`, it removes this run's oldest checkpoints.
    """
    run_state = dict(run_state or {})
    final = os.path.join(config.output_dir, f"{CHECKPOINT_PREFIX}{global_step}")
    tmp = os.path.join(config.output_dir, f".tmp-{CHECKPOINT_PREFIX}{global_step}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)
    torch.save(objective.state_dict(), os.path.join(tmp, OBJECTIVE_STATE_NAME.format(accelerator.process_index)))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state = {"global_step": global_step, "epoch": epoch, "num_processes": accelerator.num_processes,
                 "config": asdict(config), **run_state, "files": _manifest(tmp)}
        with open(os.path.join(tmp, TRAINER_STATE_NAME), "w") as f:  # written last: marks the folder complete
            json.dump(state, f, indent=2)
        if os.path.exists(final):  # the final step of this run, already checkpointed there
            old = os.path.join(config.output_dir, f".old-{CHECKPOINT_PREFIX}{global_step}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        # accelerate's ProjectConfiguration(total_limit=...) would prune by folder count in its own layout, with no
        # notion of which run wrote a checkpoint; this prunes only the run's own ones.
        if config.checkpoints_total_limit is not None:
            own = list_checkpoints(config.output_dir, run_id=run_state.get("run_id"))
            for stale in own[: -config.checkpoints_total_limit]:
                shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, objective, path: str) -> Dict[str, Any]:
    """Restore what `save_checkpoint` wrote (model, optimizer, scheduler, EMA, RNG states, objective) after verifying
    it; returns the trainer state (`global_step`, `epoch`, `config`, ...). A checkpoint written by another number of
    processes is refused here; [`train_loop`] can apply such a change with `allow_changed_hyperparameters`."""
    state = verify_checkpoint(path)
    if state["num_processes"] != accelerator.num_processes:
        raise ValueError(
            f"{path} was written by {state['num_processes']} processes; resuming it exactly needs as many, "
            f"got {accelerator.num_processes}"
        )
    _restore(accelerator, objective, path)
    return state


def _restore(accelerator: Accelerator, objective, path: str) -> None:
    accelerator.load_state(path)
    objective_file = os.path.join(path, OBJECTIVE_STATE_NAME.format(accelerator.process_index))
    if os.path.isfile(objective_file):
        objective.load_state_dict(torch.load(objective_file, weights_only=True))
    else:  # a process that did not exist when the checkpoint was written (allowed change of process count)
        logger.warning("%s has no objective state for process %d; it starts from its seed", path,
                       accelerator.process_index)


# ---------------------------------------------------------------------------------------------- output folder


def prepare_output_dir(config: TrainingConfig) -> Optional[str]:
    """
    Make `output_dir` ready for a run and return the verified checkpoint to resume from (None: a new run). A folder
    that holds another run's checkpoints or saved model is refused unless the run resumes (`resume_from_checkpoint`)
    or `overwrite_output_dir` is set, which removes that run's checkpoints first. Call it on every process at once;
    only the main process removes anything.
    """
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()  # every process looks at the folder before anything in it is removed
    checkpoint = resolve_checkpoint(config.resume_from_checkpoint, config.output_dir)
    previous = [] if checkpoint is not None else list_checkpoints(config.output_dir) + [
        os.path.join(config.output_dir, name) for name in SAVED_MODEL_FILES
        if os.path.isfile(os.path.join(config.output_dir, name))
    ]
    if previous and not config.overwrite_output_dir:
        found = ", ".join(os.path.basename(p) for p in previous[:4]) + (" ..." if len(previous) > 4 else "")
        ways = ("it has no checkpoint to resume from: replace it with --overwrite_output_dir"
                if config.resume_from_checkpoint else
                "continue it with --resume_from_checkpoint latest, replace it with --overwrite_output_dir")
        raise FileExistsError(f"The output folder {config.output_dir!r} holds another run ({found}); {ways}, or "
                              "choose another --output_dir")
    state.wait_for_everyone()
    if previous and state.is_main_process:
        for path in list_checkpoints(config.output_dir):
            shutil.rmtree(path)
        print(f"--overwrite_output_dir: removed the earlier run's checkpoints in {config.output_dir}; its model "
              "files are replaced at the end of this run.")
    state.wait_for_everyone()
    return checkpoint


# ---------------------------------------------------------------------------------------------- the loop


def make_lr_lambda(warmup_steps: int, decay_per_epoch: float, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup_steps` optimizer steps, times `decay_per_epoch ** (step / steps_per_epoch)`."""

    def lr_lambda(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warmup * decay_per_epoch ** (step / steps_per_epoch)

    return lr_lambda


@dataclass
class _Run:
    """Everything the loop holds between steps."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LambdaLR
    ema_model: Any
    steps_per_epoch: int
    max_train_steps: Optional[int]
    run_state: Dict[str, Any]
    global_step: int = 0


def _setup(model, train_dataset, config: TrainingConfig, accelerator: Accelerator) -> _Run:
    """The optimizer, learning-rate schedule and EMA for `model`, all prepared by `accelerator`."""
    G = config.gradient_accumulation_steps
    micro_batches_per_epoch = len(train_dataset) // (config.train_batch_size * accelerator.num_processes)
    steps_per_epoch = micro_batches_per_epoch // G
    if steps_per_epoch < 1:
        raise ValueError(
            f"The training set ({len(train_dataset)} rows) is smaller than one optimizer step "
            f"({config.train_batch_size} x {accelerator.num_processes} processes x {G} accumulation steps)"
        )
    if config.max_train_steps is not None:
        max_train_steps = config.max_train_steps
    elif config.num_train_epochs is not None:
        max_train_steps = config.num_train_epochs * steps_per_epoch
    else:
        max_train_steps = None  # the time budget alone ends the run
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon, weight_decay=config.adam_weight_decay,
    )
    warmup_steps = config.lr_warmup_steps or 0
    if config.lr_warmup_epochs is not None:
        warmup_steps = int(round(config.lr_warmup_epochs * steps_per_epoch))
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, make_lr_lambda(warmup_steps, config.lr_decay_per_epoch, steps_per_epoch)
    )
    ema_model = None
    if config.use_ema:
        from diffusers.training_utils import EMAModel

        ema_model = EMAModel(model.parameters(), decay=config.ema_decay)
        ema_model.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_model)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    return _Run(model, optimizer, lr_scheduler, ema_model, steps_per_epoch, max_train_steps, run_state={})


def _hyperparameter_changes(saved: Dict[str, Any], config: TrainingConfig, num_processes: int,
                            recorded_arguments: Dict[str, Any]) -> tuple:
    """`(changeable, fixed)`: lists of `(name, checkpoint value, new value)` for the training hyperparameters that
    differ from the checkpoint's, and for the ones that may never change (model, data, optimizer kind, EMA)."""
    old_config = saved.get("config", {})
    new_config = asdict(config)
    changeable, fixed = [], []
    for key in sorted(new_config):
        if key in RUN_CONTROL_KEYS or key not in old_config or old_config[key] == new_config[key]:
            continue
        (fixed if key in FIXED_ON_RESUME_KEYS else changeable).append((key, old_config[key], new_config[key]))
    if saved["num_processes"] != num_processes:
        changeable.append(("num_processes", saved["num_processes"], num_processes))
    old_arguments = saved.get("arguments", {})
    for key in sorted(recorded_arguments):
        if key in old_arguments and old_arguments[key] != recorded_arguments[key]:
            fixed.append((key, old_arguments[key], recorded_arguments[key]))
    return changeable, fixed


def _resume(run: _Run, objective, config: TrainingConfig, accelerator: Accelerator, checkpoint: str,
            recorded_arguments: Dict[str, Any]) -> None:
    """Restore `checkpoint` into `run` and the objective, after checking what changed since it was written."""
    saved = _read_trainer_state(checkpoint)  # verified by prepare_output_dir
    changeable, fixed = _hyperparameter_changes(saved, config, accelerator.num_processes, recorded_arguments)

    def listing(changes):
        return ", ".join(f"{key} {old!r} -> {new!r}" for key, old, new in changes)

    if fixed:
        raise ValueError(f"Cannot resume {checkpoint}: these settings differ from the checkpoint's and cannot change "
                         f"in a running training: {listing(fixed)}")
    if changeable and not config.allow_changed_hyperparameters:
        raise ValueError(
            f"Resuming {checkpoint} with changed hyperparameters: {listing(changeable)}. Pass "
            "--allow_changed_hyperparameters to apply them (they are recorded in the checkpoints, train_results.json "
            "and the model card), or resume with the checkpoint's values"
        )
    accelerator.print(f"Resuming from {checkpoint}")
    _restore(accelerator, objective, checkpoint)
    run.global_step = saved["global_step"]
    changes = list(saved.get("hyperparameter_changes", []))
    if changeable:
        _apply_changes(run, config, accelerator)
        changes += [{"step": run.global_step, "name": key, "old": old, "new": new} for key, old, new in changeable]
        accelerator.print(f"Applied changed hyperparameters from step {run.global_step}: {listing(changeable)}")
    run.run_state.update(run_id=saved.get("run_id"), hyperparameter_changes=changes)


def _apply_changes(run: _Run, config: TrainingConfig, accelerator: Accelerator) -> None:
    """Put the new optimizer hyperparameters over the restored ones (`load_state` brings back the checkpoint's)."""
    for group in run.optimizer.param_groups:
        group.update(betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon,
                     weight_decay=config.adam_weight_decay, initial_lr=config.learning_rate)
    scheduler = run.lr_scheduler.scheduler if hasattr(run.lr_scheduler, "scheduler") else run.lr_scheduler
    scheduler.base_lrs = [config.learning_rate] * len(run.optimizer.param_groups)
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    for group in run.optimizer.param_groups:
        group["lr"] = config.learning_rate * factor
    scheduler._last_lr = [group["lr"] for group in run.optimizer.param_groups]
    if run.ema_model is not None:
        run.ema_model.decay = config.ema_decay
    accelerator.step = 0  # the accumulation counter restarts at a step boundary with the new accumulation count


def _epoch_loader(train_dataset, config: TrainingConfig, accelerator: Accelerator, run: _Run, collate_fn):
    """The prepared DataLoader for the rest of the current epoch, starting where `run.global_step` left off."""
    G = config.gradient_accumulation_steps
    epoch = run.global_step // run.steps_per_epoch
    sampler = EpochBatchSampler(len(train_dataset), config.train_batch_size,
                                run.steps_per_epoch * G * accelerator.num_processes, config.seed, epoch)
    # A private generator: creating the loader's iterator must not consume the global RNG (dropout's), which a
    # resumed run has just restored.
    loader = accelerator.prepare(DataLoader(train_dataset, batch_sampler=sampler, collate_fn=collate_fn,
                                            num_workers=config.dataloader_num_workers,
                                            generator=torch.Generator().manual_seed(config.seed + epoch)))
    start = (run.global_step % run.steps_per_epoch) * G  # micro-batches of this process already trained on
    return (accelerator.skip_first_batches(loader, start) if start else loader), epoch


def _optimizer_step(run: _Run, accelerator: Accelerator, config: TrainingConfig, sums: Dict[str, float],
                    grad_norm) -> Dict[str, float]:
    """What follows the last micro-batch of an optimizer step: schedule, EMA, and the step's logs averaged over the
    processes (one small collective)."""
    run.lr_scheduler.step()
    if run.ema_model is not None:
        run.ema_model.step(accelerator.unwrap_model(run.model).parameters())
    run.global_step += 1
    keys = sorted(sums)
    values = accelerator.reduce(torch.tensor([sums[k] for k in keys], device=accelerator.device), "mean")
    logs = dict(zip(keys, values.tolist()))
    logs["lr"] = run.lr_scheduler.get_last_lr()[0]
    if grad_norm is not None:
        logs["grad_norm"] = float(grad_norm)
    logs["epoch"] = run.global_step / run.steps_per_epoch
    return logs


class _Progress:
    """A progress bar over optimizer steps that also shows the time budget (elapsed / budget) when there is one."""

    def __init__(self, run: _Run, config: TrainingConfig, accelerator: Accelerator):
        self.budget = config.max_train_time_s
        self.bar = tqdm(total=run.max_train_steps, initial=run.global_step, desc="Steps",
                        disable=not accelerator.is_local_main_process or config.disable_progress_bar)

    def update(self, logs: Dict[str, float], elapsed: float) -> None:
        self.bar.update(1)
        postfix = {"loss": f"{logs.get('loss', float('nan')):.4g}", "lr": f"{logs['lr']:.3g}"}
        if self.budget is not None:
            postfix["time"] = f"{elapsed:.0f}/{self.budget:.0f}s"
        self.bar.set_postfix(postfix)

    def close(self) -> None:
        self.bar.close()


def train_loop(
    model: torch.nn.Module,
    train_dataset,
    objective,
    config: TrainingConfig,
    collate_fn: Optional[Callable] = None,
    accelerator: Optional[Accelerator] = None,
    on_checkpoint: Optional[Callable[[str, int], None]] = None,
    recorded_arguments: Optional[Dict[str, Any]] = None,
) -> TrainingResult:
    """
    Train `model` on `train_dataset` (anything with `__len__` and `__getitem__`, e.g. a `datasets.Dataset` in torch
    format) by minimising `objective(model, batch, accelerator)`; see the module docstring.

    The model must be built before the call, after `accelerate.utils.set_seed(config.seed)` so every process starts
    from the same weights. Pass an `accelerator` to reuse one; by default it is built from `config`.
    `on_checkpoint(folder, global_step)`, if given, is called on every process after each checkpoint is complete
    (e.g. to push it to the Hub from the main process). `recorded_arguments` (JSON values: the task's model and data
    arguments) are written into every checkpoint, and a resume whose arguments differ from them is refused.
    """
    if accelerator is None:
        accelerator = make_accelerator(config)
    recorded_arguments = dict(recorded_arguments or {})
    checkpoint = prepare_output_dir(config)
    if config.resume_from_checkpoint and checkpoint is None:
        accelerator.print(f"No checkpoint found in {config.output_dir}; starting a new run.")
    os.makedirs(config.output_dir, exist_ok=True)

    run = _setup(model, train_dataset, config, accelerator)
    objective.setup(accelerator)
    if checkpoint is not None:
        _resume(run, objective, config, accelerator, checkpoint, recorded_arguments)
    else:
        run.run_state.update(run_id=uuid.uuid4().hex, hyperparameter_changes=[])
    run.run_state["arguments"] = recorded_arguments

    trackers = config.report_to not in (None, "none")
    if trackers:
        accelerator.init_trackers(config.tracker_project_name, config={
            k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool))
        })
    G = config.gradient_accumulation_steps
    limits = [f"{run.max_train_steps} steps"] if run.max_train_steps is not None else []
    if config.max_train_time_s is not None:
        limits.append(f"{config.max_train_time_s:g} s")
    accelerator.print(
        f"{len(train_dataset)} training rows, {run.steps_per_epoch} optimizer steps per epoch, "
        f"global batch {config.train_batch_size} x {accelerator.num_processes} x {G}, until {' or '.join(limits)}"
    )

    def checkpoint_now(epoch: int) -> None:
        folder = save_checkpoint(accelerator, objective, config, run.global_step, epoch, run.run_state)
        if on_checkpoint is not None:
            on_checkpoint(folder, run.global_step)

    progress = _Progress(run, config, accelerator)
    history: List[Dict[str, float]] = []
    start_time = time.monotonic()
    stopped_early = False
    last_saved = run.global_step if checkpoint is not None else None
    epoch = run.global_step // run.steps_per_epoch

    def done() -> bool:
        return stopped_early or (run.max_train_steps is not None and run.global_step >= run.max_train_steps)

    while not done():
        loader, epoch = _epoch_loader(train_dataset, config, accelerator, run, collate_fn)
        run.model.train()
        sums: Dict[str, float] = {}
        for batch in loader:
            with accelerator.accumulate(run.model):
                loss, logs = objective(run.model, batch, accelerator)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and config.max_grad_norm:
                    grad_norm = accelerator.clip_grad_norm_(run.model.parameters(), config.max_grad_norm)
                run.optimizer.step()
                run.optimizer.zero_grad(set_to_none=True)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value) / G
            if not accelerator.sync_gradients:
                continue
            step_logs = _optimizer_step(run, accelerator, config, sums, grad_norm)
            sums = {}
            history.append(step_logs)
            elapsed = time.monotonic() - start_time
            progress.update(step_logs, elapsed)
            if trackers and run.global_step % config.logging_steps == 0:
                accelerator.log(step_logs, step=run.global_step)
            if config.max_train_time_s is not None:  # every process must take the same decision
                over = torch.tensor(float(elapsed > config.max_train_time_s), device=accelerator.device)
                stopped_early = bool(accelerator.reduce(over, "max").item())
            if config.checkpointing_steps and run.global_step % config.checkpointing_steps == 0:
                checkpoint_now(epoch)
                last_saved = run.global_step
            if done():
                break
    progress.close()
    # The last step is always checkpointed, so a run can be continued with a larger --max_train_steps.
    if config.checkpointing_steps and last_saved != run.global_step:
        checkpoint_now(epoch)

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(run.model)
    if run.ema_model is not None:
        run.ema_model.copy_to(unwrapped.parameters())
    # Not `accelerator.end_training()`: it destroys the process group, which the caller may still need (saving, a
    # final evaluation). The caller ends it with `result.accelerator.end_training()`.
    return TrainingResult(model=unwrapped, accelerator=accelerator, global_step=run.global_step, epoch=epoch,
                          steps_per_epoch=run.steps_per_epoch, history=history,
                          train_time_s=time.monotonic() - start_time, stopped_early=stopped_early,
                          hyperparameter_changes=run.run_state["hyperparameter_changes"])


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The `Accelerator` of a run: mixed precision, gradient accumulation, TensorBoard under `output_dir/logs`."""
    log_with = None if config.report_to in (None, "none") else config.report_to
    return Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=log_with,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=os.path.join(config.output_dir, config.logging_dir)
        ),
        # The learning-rate schedule counts optimizer steps, whatever the number of processes.
        step_scheduler_with_optimizer=False,
    )
