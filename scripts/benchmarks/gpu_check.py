#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""A GPU check of multinomial text diffusion, to run once on a CUDA machine (under 10 minutes):

1. the machine (GPU name and capability, torch / CUDA / cuDNN versions, the CPU capability);
2. checks, each pass or fail with a one-line error, none stopping the others: the library's own training entry
   (`hf_multinomial.training.run.train`, preset `tiny`, fp32 and `--mixed_precision bf16`) runs on the device,
   saves a pipeline, and `DiscreteDiffusionPipeline.from_pretrained` reloads it and samples on the device with a
   device `torch.Generator` (ids of the right shape and range, the same ids for the same seed, text);
3. the training throughput at the paper configuration (preset `text8`: 12 layers, width 512, T = 1000, batch
   32 x 256): one step is `DiffusionObjective` (add_noise, denoiser forward, compute_loss, prior_kl), backward and
   an Adam step, in fp32 with TF32 off, with TF32 on, and under bf16 autocast; seconds per step, characters per
   second and peak memory (`torch.cuda.max_memory_allocated`), warm-up steps excluded;
4. the time of one 256-character sample at the paper configuration, 1000 and 100 steps, batch 1, fp32 and bf16
   autocast, beside the paper's Table 10;
5. as the last line, one JSON line with every figure and check.

    python scripts/benchmarks/gpu_check.py                         # on a CUDA machine
    python scripts/benchmarks/gpu_check.py --device cpu --quick    # a dry run of every part, ~1 min on a CPU

Progress goes to stderr. Exit status 0 when every check passed, 1 when one failed, 2 without a CUDA device (and
without `--device cpu`). `--quick` uses the `small` preset instead of the paper's and 10-step samples.
"""

import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from transformers import HfArgumentParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_utils import machine_info, print_table  # noqa: E402

START = time.monotonic()

# The paper's Table 10 (Hoogeboom et al. 2021, appendix): "Sample time is measured by generating a single text sample
# of length 256 averaged over 10 runs"; "Experiments where run on NVIDIA-GTX 1080Ti GPUs, CUDA 10.1 with Python
# version 3.7.6 in Pytorch 1.5.1 or 1.7.1" (Appendix B.5).
PAPER_TABLE_10 = {
    1000: {"mean_s": 26.6, "sd_s": 2.2,
           "row": "Multinomial Text Diffusion (ours) 26.6 ±2.2‡ (‡ This result is for the complete 1000 timesteps "
                  "chain, improvements are possible by skipping steps.)"},
    100: {"mean_s": 2.4, "sd_s": 0.16, "row": "Multinomial Text Diffusion, 100 steps (ours) 2.4 ±0.16"},
}
PAPER_HARDWARE = "NVIDIA GTX 1080 Ti, CUDA 10.1, PyTorch 1.5.1 or 1.7.1 (paper, Appendix B.5)"


@dataclass
class GpuCheckArguments:
    device: str = field(default="cuda", metadata={
        "help": "cuda, or cpu for a dry run of every part.", "choices": ["cuda", "cpu"]})
    quick: bool = field(default=False, metadata={
        "help": "Tiny sizes for a smoke test: the small preset instead of the paper's, a few steps, 10-step samples."})
    warmup_steps: Optional[int] = field(default=None, metadata={
        "help": "Untimed training steps per mode (default 3; --quick 1)."})
    train_steps: Optional[int] = field(default=None, metadata={
        "help": "Timed training steps per mode, at most (default 20; --quick 2)."})
    train_budget_s: float = field(default=45.0, metadata={
        "help": "Seconds of timed training steps per mode, at most (at least one step is timed)."})
    sampling_runs: Optional[int] = field(default=None, metadata={
        "help": "Timed samples per row, at most (default 10, as the paper's Table 10; --quick 2)."})
    sampling_budget_s: float = field(default=40.0, metadata={
        "help": "Seconds per sampling row; a run that would not fit is cut short and extrapolated (marked)."})
    budget_s: float = field(default=480.0, metadata={
        "help": "Total seconds: a part that would start after this is skipped (marked in the results)."})
    json_file: Optional[str] = field(default=None, metadata={"help": "Also write the final JSON there."})


def log(message: str) -> None:
    print(f"[{time.monotonic() - START:7.1f} s] {message}", file=sys.stderr, flush=True)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:400]


class Checks:
    """Pass/fail of each check, with a one-line error; a failing check never stops the others."""

    def __init__(self):
        self.results: Dict[str, Dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        log(f"check {name} ...")
        try:
            detail = fn()
            self.results[name] = {"ok": True, "detail": detail, "error": None}
        except Exception as error:  # noqa: BLE001 - every failure is recorded, none stops the script
            traceback.print_exc(file=sys.stderr)
            self.results[name] = {"ok": False, "detail": None, "error": one_line(error)}
        self.results[name]["seconds"] = round(time.monotonic() - t0, 2)
        log(f"check {name}: {'pass' if self.results[name]['ok'] else 'FAIL ' + self.results[name]['error']}")
        return self.results[name]["detail"]

    def skip(self, name: str, why: str) -> None:
        self.results[name] = {"ok": False, "detail": None, "error": f"skipped: {why}", "seconds": 0.0}
        log(f"check {name}: skipped ({why})")


def rounded(value):
    return float(f"{value:.4g}") if isinstance(value, float) else value


def require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def over_budget(args) -> bool:
    return time.monotonic() - START > args.budget_s


# ---------------------------------------------------------------------------------------------- 1. machine


def gpu_machine_info(device: str) -> Dict[str, Any]:
    """`benchmark_utils.machine_info` plus the GPU, the CUDA and cuDNN builds and the package versions."""
    info = {"device": device, **machine_info(), "cuda_build": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            gpu_memory_GiB=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    for package in ("hf_multinomial", "diffusers", "transformers", "accelerate", "datasets"):
        try:
            from importlib.metadata import version

            info[package] = version(package.replace("_", "-"))
        except Exception:  # noqa: BLE001
            info[package] = None
    return info


# ---------------------------------------------------------------------------------------------- 2. checks


def reset_accelerate_state() -> None:
    """`accelerate` keeps its state (device, mixed precision) in process-wide singletons; a second `run.train` with
    another `--mixed_precision` in this process needs them cleared (internal API, as accelerate's own tests do)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def check_training(args, checks: Checks, workdir: str, mixed_precision: str) -> Optional[str]:
    """`run.train(text_diffusion.TASK, ...)` with the tiny preset on the device; returns the output folder."""
    from accelerate import PartialState
    from accelerate.state import AcceleratorState

    from hf_multinomial.training import run, text_diffusion

    output_dir = os.path.join(workdir, f"tiny-{mixed_precision}")
    steps = 6
    argv = ["--preset", "tiny", "--output_dir", output_dir, "--max_train_steps", str(steps),
            "--max_train_time_s", "90", "--checkpointing_steps", "3", "--mixed_precision", mixed_precision,
            "--report_to", "none", "--disable_progress_bar", "--num_validation_sequences", "8",
            "--num_card_samples", "2", "--card_inference_steps", "10"]

    def train():
        reset_accelerate_state()
        with contextlib.redirect_stdout(sys.stderr):  # the loop's messages: keep stdout for the tables and JSON
            results = run.train(text_diffusion.TASK, run.parse_arguments(text_diffusion.TASK, argv))
        used = PartialState().device.type
        precision = AcceleratorState().mixed_precision
        require(used == args.device, f"accelerate trained on {used!r}, not {args.device!r}")
        require(precision == mixed_precision, f"accelerate used mixed_precision {precision!r}, not {mixed_precision!r}")
        require(results["global_step"] == steps, f"global_step {results['global_step']} != {steps}")
        loss = results["train_loss"]
        require(loss is not None and math.isfinite(loss), f"train_loss is {loss!r}")
        bound = results.get("validation_bpc_estimate")
        require(bound is not None and math.isfinite(bound), f"validation_bpc_estimate is {bound!r}")
        for name in ("model_index.json", "train_results.json", "README.md", "checkpoint-6"):
            require(os.path.exists(os.path.join(output_dir, name)), f"{name} missing in the output folder")
        return {"device": used, "mixed_precision": precision, "global_step": results["global_step"],
                "train_loss": round(loss, 4),
                "validation_bpc_estimate": round(bound, 4), "train_time_s": results["train_time_s"]}

    name = "train_tiny_" + ("fp32" if mixed_precision == "no" else mixed_precision)
    detail = checks.run(name, train)
    reset_accelerate_state()
    return output_dir if detail is not None else None


def check_reload(args, checks: Checks, output_dir: Optional[str]) -> None:
    from hf_multinomial import DiscreteDiffusionPipeline

    names = ("reload_to_device", "reload_sample_ids", "reload_same_seed_same_ids", "reload_sample_text")
    if output_dir is None or not os.path.isfile(os.path.join(output_dir, "model_index.json")):
        for name in names:
            checks.skip(name, "no saved pipeline (train_tiny_fp32 failed)")
        return
    state = {}

    def load():
        pipe = DiscreteDiffusionPipeline.from_pretrained(output_dir).to(args.device)
        pipe.set_progress_bar_config(disable=True)
        devices = {p.device.type for p in pipe.denoiser.parameters()}
        require(devices == {args.device}, f"denoiser parameters on {devices}")
        require(pipe.device.type == args.device, f"pipe.device is {pipe.device}")
        state["pipe"] = pipe
        return {"pipe.device": str(pipe.device), "num_classes": pipe.scheduler.config.num_classes,
                "T": pipe.scheduler.config.num_train_timesteps, "max_seq_len": pipe.denoiser.config.max_seq_len}

    def sample(seed, batch_size=3, output_type="pt"):
        pipe = state["pipe"]
        generator = torch.Generator(device=args.device).manual_seed(seed)
        return pipe(batch_size=batch_size, generator=generator, output_type=output_type).samples

    def ids():
        pipe = state["pipe"]
        out = sample(0)
        K, L = pipe.scheduler.config.num_classes, pipe.denoiser.config.max_seq_len
        require(tuple(out.shape) == (3, L), f"shape {tuple(out.shape)} != {(3, L)}")
        require(out.dtype == torch.long, f"dtype {out.dtype}")
        low, high = int(out.min()), int(out.max())
        require(0 <= low and high < K, f"ids in [{low}, {high}], not in [0, {K})")
        state["ids"] = out
        return {"shape": list(out.shape), "dtype": str(out.dtype), "min": low, "max": high, "K": K}

    def same_seed():
        again = sample(0)
        require(torch.equal(again, state["ids"]), "a second run with the same seed gave other ids")
        other = sample(1)
        return {"equal_same_seed": True, "differs_other_seed": not torch.equal(other, state["ids"])}

    def text():
        texts = sample(0, batch_size=2, output_type="text")
        L = state["pipe"].denoiser.config.max_seq_len
        require(len(texts) == 2 and all(isinstance(s, str) and len(s) == L for s in texts),
                f"texts {texts!r} are not 2 strings of {L} characters")
        return {"first": texts[0]}

    checks.run("reload_to_device", load)
    for name, fn in zip(names[1:], (ids, same_seed, text)):
        if "pipe" not in state or (name == "reload_same_seed_same_ids" and "ids" not in state):
            checks.skip(name, "an earlier reload check failed")
        else:
            checks.run(name, fn)


# ---------------------------------------------------------------------------------------------- model at a preset


def build_preset(preset: str):
    """The pipeline of a `text_diffusion` preset, as `run.train` builds it (random weights)."""
    from hf_multinomial.training import run, text_diffusion

    arguments = run.parse_arguments(text_diffusion.TASK, ["--preset", preset])
    pipeline = text_diffusion.build(arguments, arguments.data.make_vocabulary())
    return pipeline, arguments


class Autocast(torch.nn.Module):
    """The denoiser with its forward under `torch.autocast` (what `accelerate`'s mixed precision does)."""

    def __init__(self, module: torch.nn.Module, device: str, dtype=torch.bfloat16):
        super().__init__()
        self.module, self.device_type, self.dtype = module, device, dtype

    def forward(self, *args, **kwargs):
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.module(*args, **kwargs)


class SingleProcess:
    """What `DiffusionObjective` uses of an `Accelerator`, for one process."""

    def __init__(self, device: str):
        self.device = torch.device(device)
        self.process_index = 0

    def gather(self, tensors):
        return tensors


def set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


# ---------------------------------------------------------------------------------------------- 3. training


TRAINING_MODES = (
    # name, TF32, bf16 autocast of the denoiser forward
    ("fp32 (TF32 off)", False, False),
    ("fp32 + TF32", True, False),
    ("bf16 autocast (TF32 off)", False, True),
)


def measure_training(args, checks: Checks, preset: str, batch_size: int) -> List[Dict[str, Any]]:
    from hf_multinomial.training.diffusion import DiffusionObjective

    rows = []
    tf32_before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for mode, tf32, bf16 in TRAINING_MODES:
        name = f"train_step_{preset}_" + mode.split(" (")[0].replace(" + ", "_").replace(" ", "_")
        if over_budget(args):
            checks.skip(name, "time budget spent")
            rows.append({"preset": preset, "mode": mode, "error": "skipped: time budget spent"})
            continue

        def measure():
            set_tf32(tf32)
            torch.manual_seed(0)
            pipeline, arguments = build_preset(preset)
            scheduler = pipeline.scheduler
            model = pipeline.denoiser.to(args.device).train()
            if args.device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            forward = Autocast(model, args.device) if bf16 else model
            optimizer = torch.optim.Adam(model.parameters(), lr=arguments.training.learning_rate)
            objective = DiffusionObjective(scheduler, seed=0, aux_loss_weight=arguments.model.aux_loss_weight)
            accelerator = SingleProcess(args.device)
            objective.setup(accelerator)
            K, L = scheduler.config.num_classes, arguments.data.seq_len
            data = torch.Generator(device=args.device).manual_seed(1)

            def step():
                batch = {"input_ids": torch.randint(K, (batch_size, L), generator=data, device=args.device)}
                loss, _ = objective(forward, batch, accelerator)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return loss.detach()

            for _ in range(args.warmup_steps):
                step()
            synchronize(args.device)
            times, losses = [], []
            budget_start = time.perf_counter()
            while len(times) < args.train_steps and (
                    not times or time.perf_counter() - budget_start < args.train_budget_s):
                synchronize(args.device)
                t0 = time.perf_counter()
                losses.append(step())
                synchronize(args.device)
                times.append(time.perf_counter() - t0)
            losses = torch.stack(losses).float().cpu().tolist()
            require(all(math.isfinite(x) for x in losses), f"non-finite loss {losses}")
            per_step = statistics.median(times)
            row = {
                "preset": preset, "mode": mode, "batch": f"{batch_size}x{L}", "T": scheduler.config.num_train_timesteps,
                "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
                "timed_steps": len(times), "warmup_steps": args.warmup_steps,
                "s_per_step": per_step, "s_per_step_min": min(times),
                "chars_per_s": batch_size * L / per_step,
                "peak_mem_MiB": round(torch.cuda.max_memory_allocated() / 2**20) if args.device == "cuda" else None,
                "last_loss_nats_per_char": round(losses[-1], 4),
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
            }
            rows.append(row)
            del optimizer, model, pipeline, objective
            return {k: rounded(row[k]) for k in ("s_per_step", "chars_per_s", "peak_mem_MiB")}

        if checks.run(name, measure) is None:
            rows.append({"preset": preset, "mode": mode, "error": checks.results[name]["error"]})
        if args.device == "cuda":
            torch.cuda.empty_cache()
    set_tf32(tf32_before[0])
    torch.backends.cudnn.allow_tf32 = tf32_before[1]
    return rows


# ---------------------------------------------------------------------------------------------- 4. sampling


class _Stop(Exception):
    pass


def measure_sampling(args, checks: Checks, preset: str, step_counts) -> List[Dict[str, Any]]:
    from hf_multinomial import DiscreteDiffusionPipeline

    rows = []
    torch.manual_seed(0)
    built, _ = build_preset(preset)
    pipe = DiscreteDiffusionPipeline(denoiser=built.denoiser.eval(), scheduler=built.scheduler).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    L = pipe.denoiser.config.max_seq_len
    K = pipe.scheduler.config.num_classes
    set_tf32(False)

    def run_once(num_steps: int, seed: int, bf16: bool, stop_after: Optional[int] = None):
        """One batch-1 sample; returns (steps done, seconds, ids)."""
        done = [0]

        def callback(pipeline, i, t, kwargs):
            done[0] = i + 1
            if stop_after is not None and done[0] >= stop_after:
                raise _Stop
            return kwargs

        synchronize(args.device)
        t0 = time.perf_counter()
        out = None
        try:
            with torch.autocast(args.device, dtype=torch.bfloat16, enabled=bf16):
                out = pipe(batch_size=1, num_inference_steps=num_steps, output_type="pt",
                           generator=torch.Generator(device=args.device).manual_seed(seed),
                           callback_on_step_end=callback if stop_after is not None else None).samples
        except _Stop:
            pass
        synchronize(args.device)
        return (num_steps if out is not None else done[0]), time.perf_counter() - t0, out

    for dtype in ("fp32", "bf16"):
        for num_steps in step_counts:
            name = f"sample_{preset}_{num_steps}_steps_{dtype}"
            if over_budget(args):
                checks.skip(name, "time budget spent")
                rows.append({"preset": preset, "dtype": dtype, "steps": num_steps,
                             "error": "skipped: time budget spent"})
                continue

            def measure():
                bf16 = dtype == "bf16"
                probe = min(num_steps, 10)
                run_once(num_steps, 0, bf16, stop_after=probe)  # warm-up (kernels, allocator)
                steps, seconds, _ = run_once(num_steps, 0, bf16, stop_after=probe)
                predicted = seconds / steps * num_steps
                if predicted > args.sampling_budget_s:
                    # A step costs the same at every t: time what fits and extrapolate.
                    fit = max(probe, int(args.sampling_budget_s / (seconds / steps)))
                    steps, seconds, _ = run_once(num_steps, 1, bf16, stop_after=min(fit, num_steps - 1))
                    times, extrapolated = [seconds / steps * num_steps], True
                else:
                    runs = max(1, min(args.sampling_runs, int(args.sampling_budget_s / max(predicted, 1e-9))))
                    times, extrapolated = [], False
                    for r in range(runs):
                        steps, seconds, ids = run_once(num_steps, r, bf16)
                        require(ids is not None and tuple(ids.shape) == (1, L),
                                f"sample shape {getattr(ids, 'shape', None)}")
                        require(0 <= int(ids.min()) and int(ids.max()) < K, "sample ids out of range")
                        times.append(seconds)
                paper = PAPER_TABLE_10.get(num_steps) if not args.quick else None
                row = {
                    "preset": preset, "dtype": dtype, "batch": 1, "seq_len": L, "steps": num_steps,
                    "runs": len(times), "extrapolated": extrapolated,
                    "mean_s": statistics.fmean(times), "sd_s": statistics.stdev(times) if len(times) > 1 else 0.0,
                    "min_s": min(times), "s_per_step": statistics.fmean(times) / num_steps,
                    "paper_s": paper["mean_s"] if paper else None, "paper_sd_s": paper["sd_s"] if paper else None,
                }
                if paper:
                    row["paper_over_ours"] = paper["mean_s"] / row["mean_s"]
                rows.append(row)
                return {k: rounded(row[k]) for k in ("runs", "mean_s", "extrapolated")}

            if checks.run(name, measure) is None:
                rows.append({"preset": preset, "dtype": dtype, "steps": num_steps,
                             "error": checks.results[name]["error"]})
    return rows


# ---------------------------------------------------------------------------------------------- output


def main() -> int:
    (args,) = HfArgumentParser(GpuCheckArguments).parse_args_into_dataclasses()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False); run with --device cpu for a dry run",
              file=sys.stderr)
        return 2
    if args.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"  # accelerate (run.train) would otherwise take a visible GPU
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (1 if args.quick else 3)
    args.train_steps = args.train_steps if args.train_steps is not None else (2 if args.quick else 20)
    args.sampling_runs = args.sampling_runs if args.sampling_runs is not None else (2 if args.quick else 10)
    preset = "small" if args.quick else "text8"
    batch_size = 4 if args.quick else 32
    step_counts = (10,) if args.quick else (1000, 100)

    machine = gpu_machine_info(args.device)
    log("machine: " + json.dumps(machine))
    print(f"## GPU check ({'quick, ' if args.quick else ''}device {args.device})\n")
    for key, value in machine.items():
        print(f"- {key}: {value}")

    checks = Checks()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as workdir:
        output_dir = check_training(args, checks, workdir, "no")
        check_training(args, checks, workdir, "bf16")
        check_reload(args, checks, output_dir)
    log("training throughput ...")
    training = measure_training(args, checks, preset, batch_size)
    log("sampling ...")
    sampling = measure_sampling(args, checks, preset, step_counts)

    check_rows = [{"check": name, "result": "pass" if r["ok"] else "FAIL", "seconds": r["seconds"],
                   "detail": r["error"] or json.dumps(r["detail"], ensure_ascii=False)[:160]}
                  for name, r in checks.results.items()]
    print_table("Checks", check_rows, ["check", "result", "seconds", "detail"])
    print_table(f"Training step, preset {preset} (DiffusionObjective + backward + Adam), median of the timed steps",
                training, ["mode", "params_M", "batch", "timed_steps", "s_per_step", "chars_per_s", "peak_mem_MiB",
                           "last_loss_nats_per_char", "error"])
    print_table(f"Sampling, preset {preset}, batch 1, output_type='pt'", sampling,
                ["dtype", "steps", "runs", "extrapolated", "mean_s", "sd_s", "min_s", "s_per_step", "paper_s",
                 "paper_sd_s", "error"])
    print("\nThe paper's Table 10: \"Sample time is measured by generating a single text sample of length 256 averaged "
          "over 10 runs\": " + "; ".join(v["row"] for v in PAPER_TABLE_10.values()) + f". Hardware: {PAPER_HARDWARE}.")
    all_ok = all(r["ok"] for r in checks.results.values())
    print(f"\n{sum(r['ok'] for r in checks.results.values())} of {len(checks.results)} checks passed; "
          f"{time.monotonic() - START:.0f} s in all.\n")
    result = {
        "benchmark": "gpu_check", "quick": args.quick, "machine": machine, "all_checks_passed": all_ok,
        "checks": checks.results, "training": training, "sampling": sampling,
        "paper_table_10": {"hardware": PAPER_HARDWARE, **{str(k): v for k, v in PAPER_TABLE_10.items()}},
        "elapsed_s": round(time.monotonic() - START, 1),
    }
    line = json.dumps(result, ensure_ascii=False, default=str)
    if args.json_file:
        with open(args.json_file, "w") as f:
            f.write(line + "\n")
    print(line, flush=True)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
