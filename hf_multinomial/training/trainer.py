# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
The one training loop of hf-multinomial, shared by every training script.

It knows nothing about diffusion, flows or text. It takes a model, a training dataset, an *objective* and a
[`TrainingConfig`], and does the rest with `accelerate`: Adam, warm-up then an exponential per-epoch learning-rate
decay (applied per optimizer step), gradient accumulation and clipping, mixed precision, optional EMA, TensorBoard
logging, a tqdm progress bar, atomic checkpoints and exact resumption.

The objective is any object with

- `objective(model, batch, accelerator) -> (loss, logs)`: the scalar loss to minimise for one micro-batch, and a dict
  of floats (or 0-dim tensors) to log. It may use `accelerator` for collectives (e.g. gathering per-example losses).
- `state_dict()` / `load_state_dict(state)`: its checkpointable state (e.g. an importance sampler and a
  `torch.Generator`). It is saved **per process** (`objective_state_{process_index}.pt`), so each process may hold
  its own random state.
- optionally `setup(accelerator)`: called once, before any checkpoint is loaded (e.g. to seed a per-process
  generator from `seed + accelerator.process_index`).

Exact resumption: the data order is a pure function of `(seed, epoch)` (a permutation per epoch, cut into global
batches, each process taking its own slice), so resuming at optimizer step `s` starts reading at the micro-batch where
step `s` left off, without replaying anything. Model, optimizer, learning-rate scheduler, EMA, the global RNG states of
every process (accelerate's `save_state`) and every process's objective state are in the checkpoint. A run stopped
after a checkpoint and resumed thus ends with the same weights as an uninterrupted run of the same seed and length
(same number of processes and batch sizes).
"""

import json
import logging
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, send_to_device
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
TRAINER_STATE_NAME = "trainer_state.json"
OBJECTIVE_STATE_NAME = "objective_state_{}.pt"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class TrainingConfig:
    """Hyperparameters of the generic loop (the task's own ones live with the task)."""

    output_dir: str = "output"
    seed: int = 0
    train_batch_size: int = 32  # per process and per micro-batch
    learning_rate: float = 1e-4
    optimizer: str = "adam"  # or "adamax" (the argmax flows' and segmentation flows' optimizer in the paper)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    adam_weight_decay: float = 0.0
    lr_warmup_steps: int = 0
    lr_decay_per_epoch: float = 1.0  # multiply the learning rate by this once per epoch, smoothly per step
    max_train_steps: Optional[int] = None  # optimizer steps; overrides num_train_epochs
    num_train_epochs: int = 1
    max_train_time_s: Optional[float] = None  # stop (and checkpoint) after this much wall-clock time
    gradient_accumulation_steps: int = 1
    max_grad_norm: Optional[float] = 1.0
    mixed_precision: str = "no"
    use_ema: bool = False
    ema_decay: float = 0.9999
    checkpointing_steps: Optional[int] = 500
    checkpoints_total_limit: Optional[int] = None
    resume_from_checkpoint: Optional[str] = None  # "latest" or a path
    dataloader_num_workers: int = 0
    report_to: Optional[str] = "tensorboard"  # or None / "none"
    logging_dir: str = "logs"  # relative to output_dir
    tracker_project_name: str = "train"
    logging_steps: int = 1
    disable_progress_bar: bool = False
    gradient_checkpointing: bool = False  # trade about 10% more time for far less activation memory


@dataclass
class TrainingResult:
    """What [`train_loop`] returns (on every process). Call `accelerator.end_training()` once done with it."""

    model: torch.nn.Module  # unwrapped; holds the EMA weights when `use_ema`
    accelerator: Accelerator
    global_step: int
    epoch: int
    history: List[Dict[str, float]] = field(default_factory=list)  # per optimizer step, this run only
    train_time_s: float = 0.0
    stopped_early: bool = False  # by max_train_time_s

    def summary(self, output_dir: str, train_rows: int, global_batch: int, bits_name: str) -> Dict[str, Any]:
        """The figures every training script reports: steps, epochs, time, the training loss (nats) and its value
        in bits (`bits_name`, e.g. "bpc") as the mean of the last 10% of steps, the parameter count, and history."""
        tail = self.history[-max(1, len(self.history) // 10):]
        return {
            "output_dir": output_dir,
            "global_step": self.global_step,
            "epochs": round(self.global_step / max(1, train_rows // global_batch), 4),
            "train_time_s": round(self.train_time_s, 2),
            "stopped_early": self.stopped_early,
            "train_loss": sum(h["loss"] for h in tail) / len(tail) if tail else None,
            f"train_{bits_name}": sum(h[bits_name] for h in tail) / len(tail) if tail else None,
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
            "history": self.history,
        }


# ---------------------------------------------------------------------------------------------- data order


class EpochBatchSampler(Sampler):
    """
    Yields this process's micro-batches of one epoch, a pure function of `(seed, epoch)`.

    A permutation of the dataset drawn from `torch.Generator().manual_seed(seed + epoch)` is cut into global batches of
    `batch_size * num_processes` indices (the remainder is dropped); process `p` takes the `p`-th slice of each.
    `start` skips that many micro-batches, which is how a resumed run continues where it stopped.
    """

    def __init__(self, dataset_len: int, batch_size: int, num_batches: int, seed: int, epoch: int,
                 num_processes: int = 1, process_index: int = 0, start: int = 0):
        self.dataset_len, self.batch_size, self.num_batches = dataset_len, batch_size, num_batches
        self.seed, self.epoch, self.start = seed, epoch, start
        self.num_processes, self.process_index = num_processes, process_index

    def __len__(self):
        return self.num_batches - self.start

    def __iter__(self):
        order = torch.randperm(self.dataset_len, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        global_batch = self.batch_size * self.num_processes
        for b in range(self.start, self.num_batches):
            first = b * global_batch + self.process_index * self.batch_size
            yield order[first : first + self.batch_size].tolist()


# ---------------------------------------------------------------------------------------------- checkpoints


def list_checkpoints(output_dir: str) -> List[str]:
    """Complete checkpoint folders `output_dir/checkpoint-STEP`, oldest first (temporary folders are ignored)."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isfile(os.path.join(path, TRAINER_STATE_NAME)):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def resolve_checkpoint(resume_from_checkpoint: Optional[str], output_dir: str) -> Optional[str]:
    """The folder to resume from: `"latest"` gives the newest complete checkpoint (or None), a path is checked."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    if not os.path.isfile(os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME)):
        raise FileNotFoundError(f"{resume_from_checkpoint!r} is not a complete checkpoint (no {TRAINER_STATE_NAME})")
    return resume_from_checkpoint


def save_checkpoint(accelerator: Accelerator, objective, config: TrainingConfig, global_step: int, epoch: int) -> str:
    """
    Write `output_dir/checkpoint-STEP` atomically: everything goes to a hidden temporary folder first, which the main
    process renames once every process has written its part, so a killed run never leaves a partial checkpoint.
    """
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
                 "config": asdict(config)}
        with open(os.path.join(tmp, TRAINER_STATE_NAME), "w") as f:  # written last: marks the folder complete
            json.dump(state, f, indent=2)
        if os.path.exists(final):  # e.g. the final step of a run that was already checkpointed there
            old = final + ".old"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        if config.checkpoints_total_limit is not None:
            for stale in list_checkpoints(config.output_dir)[: -config.checkpoints_total_limit]:
                shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, objective, path: str) -> Dict[str, Any]:
    """Restore what `save_checkpoint` wrote (model, optimizer, scheduler, EMA, RNG states, objective); returns the
    trainer state (`global_step`, `epoch`, ...)."""
    with open(os.path.join(path, TRAINER_STATE_NAME)) as f:
        state = json.load(f)
    if state["num_processes"] != accelerator.num_processes:
        raise ValueError(
            f"{path} was written by {state['num_processes']} processes; resuming it exactly needs as many, "
            f"got {accelerator.num_processes}"
        )
    accelerator.load_state(path)
    objective.load_state_dict(
        torch.load(os.path.join(path, OBJECTIVE_STATE_NAME.format(accelerator.process_index)), weights_only=True)
    )
    return state


# ---------------------------------------------------------------------------------------------- the loop


def make_lr_lambda(warmup_steps: int, decay_per_epoch: float, steps_per_epoch: int) -> Callable[[int], float]:
    """Linear warm-up over `warmup_steps` optimizer steps, times `decay_per_epoch ** (step / steps_per_epoch)`."""

    def lr_lambda(step: int) -> float:
        warmup = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        return warmup * decay_per_epoch ** (step / steps_per_epoch)

    return lr_lambda


def train_loop(
    model: torch.nn.Module,
    train_dataset,
    objective,
    config: TrainingConfig,
    collate_fn: Optional[Callable] = None,
    accelerator: Optional[Accelerator] = None,
    on_checkpoint: Optional[Callable[[str, int], None]] = None,
) -> TrainingResult:
    """
    Train `model` on `train_dataset` (anything with `__len__` and `__getitem__`, e.g. a `datasets.Dataset` in torch
    format) by minimising `objective(model, batch, accelerator)`; see the module docstring.

    The model must be built before the call, after `accelerate.utils.set_seed(config.seed)` so every process starts
    from the same weights. Pass an `accelerator` to reuse one; by default it is built from `config`.
    `on_checkpoint(folder, global_step)`, if given, is called on every process after each checkpoint is complete
    (e.g. to push it to the Hub from the main process).
    """
    if accelerator is None:
        accelerator = make_accelerator(config)
    G = config.gradient_accumulation_steps
    os.makedirs(config.output_dir, exist_ok=True)

    # Data: steps per epoch are whole optimizer steps over whole global batches.
    micro_batches_per_epoch = len(train_dataset) // (config.train_batch_size * accelerator.num_processes)
    steps_per_epoch = micro_batches_per_epoch // G
    if steps_per_epoch < 1:
        raise ValueError(
            f"The training set ({len(train_dataset)} rows) is smaller than one optimizer step "
            f"({config.train_batch_size} x {accelerator.num_processes} processes x {G} accumulation steps)"
        )
    max_train_steps = config.max_train_steps or config.num_train_epochs * steps_per_epoch
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()

    optimizers = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}
    if config.optimizer not in optimizers:
        raise ValueError(f"Unknown optimizer {config.optimizer!r}; expected one of {sorted(optimizers)}")
    optimizer = optimizers[config.optimizer](
        model.parameters(), lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon, weight_decay=config.adam_weight_decay,
    )
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, make_lr_lambda(config.lr_warmup_steps, config.lr_decay_per_epoch, steps_per_epoch)
    )
    ema_model = None
    if config.use_ema:
        from diffusers.training_utils import EMAModel

        ema_model = EMAModel(model.parameters(), decay=config.ema_decay)
        ema_model.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_model)
    model, optimizer, lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
    if hasattr(objective, "setup"):
        objective.setup(accelerator)

    global_step, first_epoch = 0, 0
    checkpoint = resolve_checkpoint(config.resume_from_checkpoint, config.output_dir)
    if config.resume_from_checkpoint and checkpoint is None:
        accelerator.print(f"No checkpoint found in {config.output_dir}; starting a new run.")
    if checkpoint is not None:
        accelerator.print(f"Resuming from {checkpoint}")
        global_step = load_checkpoint(accelerator, objective, checkpoint)["global_step"]
        first_epoch = global_step // steps_per_epoch

    trackers = config.report_to not in (None, "none")
    if trackers:
        accelerator.init_trackers(config.tracker_project_name, config={
            k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool))
        })
    accelerator.print(
        f"{len(train_dataset)} training rows, {steps_per_epoch} optimizer steps per epoch, "
        f"global batch {config.train_batch_size} x {accelerator.num_processes} x {G}, {max_train_steps} steps"
    )

    progress = tqdm(total=max_train_steps, initial=global_step, desc="Steps",
                    disable=not accelerator.is_local_main_process or config.disable_progress_bar)
    history: List[Dict[str, float]] = []
    start_time = time.monotonic()
    stopped_early = False
    last_saved = global_step if checkpoint is not None else None
    epoch = first_epoch
    while global_step < max_train_steps and not stopped_early:
        # Each pass reads the rest of one epoch, starting at the micro-batch where `global_step` left off.
        epoch = global_step // steps_per_epoch
        start = (global_step % steps_per_epoch) * G
        sampler = EpochBatchSampler(len(train_dataset), config.train_batch_size, steps_per_epoch * G, config.seed,
                                    epoch, accelerator.num_processes, accelerator.process_index, start)
        # A private generator: creating the loader's iterator must not consume the global RNG (dropout's), which a
        # resumed run has just restored.
        loader = DataLoader(train_dataset, batch_sampler=sampler, collate_fn=collate_fn,
                            num_workers=config.dataloader_num_workers,
                            generator=torch.Generator().manual_seed(config.seed + epoch))
        model.train()
        sums: Dict[str, float] = {}
        for batch in loader:
            batch = send_to_device(batch, accelerator.device)
            with accelerator.accumulate(model):
                loss, logs = objective(model, batch, accelerator)
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and config.max_grad_norm:
                    grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value) / G
            if not accelerator.sync_gradients:
                continue

            lr_scheduler.step()
            if ema_model is not None:
                ema_model.step(accelerator.unwrap_model(model).parameters())
            global_step += 1
            # Average the logged values over the processes (one small collective).
            keys = sorted(sums)
            values = accelerator.reduce(torch.tensor([sums[k] for k in keys], device=accelerator.device), "mean")
            step_logs = dict(zip(keys, values.tolist()))
            step_logs["lr"] = lr_scheduler.get_last_lr()[0]
            if grad_norm is not None:
                step_logs["grad_norm"] = float(grad_norm)
            step_logs["epoch"] = global_step / steps_per_epoch
            history.append(step_logs)
            sums = {}
            progress.update(1)
            progress.set_postfix(loss=f"{step_logs.get('loss', float('nan')):.4g}", lr=f"{step_logs['lr']:.3g}")
            if trackers and global_step % config.logging_steps == 0:
                accelerator.log(step_logs, step=global_step)

            if config.max_train_time_s is not None:  # every process must take the same decision
                over = torch.tensor(float(time.monotonic() - start_time > config.max_train_time_s),
                                    device=accelerator.device)
                stopped_early = bool(accelerator.reduce(over, "max").item())
            if config.checkpointing_steps and global_step % config.checkpointing_steps == 0:
                folder = save_checkpoint(accelerator, objective, config, global_step, epoch)
                if on_checkpoint is not None:
                    on_checkpoint(folder, global_step)
                last_saved = global_step
            if global_step >= max_train_steps or stopped_early:
                break
    progress.close()
    # The last step is always checkpointed, so a run can be continued with a larger --max_train_steps.
    if config.checkpointing_steps and last_saved != global_step:
        folder = save_checkpoint(accelerator, objective, config, global_step, epoch)
        if on_checkpoint is not None:
            on_checkpoint(folder, global_step)

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    if ema_model is not None:
        ema_model.copy_to(unwrapped.parameters())
    # Not `accelerator.end_training()`: it destroys the process group, which the caller may still need (saving, a
    # final evaluation). The caller ends it with `result.accelerator.end_training()`.
    return TrainingResult(model=unwrapped, accelerator=accelerator, global_step=global_step, epoch=epoch,
                          history=history, train_time_s=time.monotonic() - start_time, stopped_early=stopped_early)


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The `Accelerator` of a run: mixed precision, gradient accumulation, TensorBoard under `output_dir/logs`."""
    log_with = None if config.report_to in (None, "none") else config.report_to
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=log_with,
        project_config=ProjectConfiguration(
            project_dir=config.output_dir, logging_dir=os.path.join(config.output_dir, config.logging_dir)
        ),
        # The learning-rate schedule counts optimizer steps, whatever the number of processes.
        step_scheduler_with_optimizer=False,
    )
    return accelerator
