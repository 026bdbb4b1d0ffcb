#!/usr/bin/env python
"""Benchmarks for multinomial text diffusion on the CPU: sampling, training, the scheduler's share of a step.

Not a test: nothing imports this file. Every mode prints a markdown table and, as its last line, one JSON line
(`{"benchmark": ..., "rows": [...]}`) so results can be collected by a script.

    python scripts/benchmarks/bench_text_diffusion.py --sampling            # pipeline, paper config
    python scripts/benchmarks/bench_text_diffusion.py --training            # paper + small, fp32 + bf16
    python scripts/benchmarks/bench_text_diffusion.py --scheduler-share     # scheduler.step vs denoiser forward
    python scripts/benchmarks/bench_text_diffusion.py --matmul              # fp32 vs bf16 GEMM throughput
    python scripts/benchmarks/bench_text_diffusion.py --quick               # small training step + 100-step sample

Timings are the minimum over `--repeats` runs (the machine may be shared). Training memory is measured in a fresh
subprocess per configuration: peak resident set size (`ru_maxrss`) minus the resident size after imports, so the
figure covers the model, its gradients, the Adam state and the activations of one training step.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_utils import machine_info, print_table  # noqa: E402

CONFIGS = {
    # The paper's text8 model (Hoogeboom et al. 2021, Tables 6 and 7) = MultinomialTransformer() defaults.
    "paper": {},
    # The small CPU configuration.
    "small": {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_local_heads": 2, "local_window": 32},
}
NUM_CLASSES = 27
SEQ_LEN = 256


class _Stop(Exception):
    pass


def build(config_name, seed=0):
    from hf_multinomial.models import MultinomialTransformer
    from hf_multinomial.schedulers import MultinomialScheduler

    torch.manual_seed(seed)
    model = MultinomialTransformer(num_classes=NUM_CLASSES, max_seq_len=SEQ_LEN, **CONFIGS[config_name])
    scheduler = MultinomialScheduler(num_classes=NUM_CLASSES, num_train_timesteps=model.config.num_train_timesteps)
    return model, scheduler


def emit(name, rows, columns):
    print_table(name, rows, columns)
    print(json.dumps({"benchmark": name, "machine": machine_info(), "rows": rows}))


# ---------------------------------------------------------------------------------------------- sampling


def time_pipeline(pipe, batch_size, num_inference_steps, max_steps, seed):
    """Run the pipeline; stop after `max_steps` steps (if fewer than `num_inference_steps`). Returns per-step times."""
    stamps = []

    def callback(pipeline, i, t, kwargs):
        stamps.append(time.perf_counter())
        if len(stamps) >= max_steps and max_steps < num_inference_steps:
            raise _Stop
        return kwargs

    start = time.perf_counter()
    try:
        pipe(
            batch_size=batch_size,
            num_inference_steps=num_inference_steps,
            generator=torch.Generator().manual_seed(seed),
            output_type="pt",
            callback_on_step_end=callback,
        )
    except _Stop:
        pass
    end = time.perf_counter()
    steps = len(stamps)
    return steps, end - start


def bench_sampling(args):
    from hf_multinomial.pipelines import DiscreteDiffusionPipeline

    model, scheduler = build("paper")
    model.eval()
    pipe = DiscreteDiffusionPipeline(denoiser=model, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    rows = []
    for batch_size in args.batch_sizes:
        time_pipeline(pipe, batch_size, 1000, 2, 0)  # warm-up
        for num_steps in (1000, 100):
            timed = min(num_steps, args.max_sampling_steps.get(batch_size, num_steps))
            best = math.inf
            for r in range(args.repeats):
                steps, seconds = time_pipeline(pipe, batch_size, num_steps, timed, r)
                best = min(best, seconds / steps)
            rows.append(
                {
                    "config": "paper",
                    "batch": batch_size,
                    "T_steps": num_steps,
                    "timed_steps": timed,
                    "extrapolated": timed < num_steps,
                    "s_per_step": best,
                    "s_per_run": best * num_steps,
                    "s_per_sample": best * num_steps / batch_size,
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    emit("sampling", rows, ["config", "batch", "T_steps", "timed_steps", "extrapolated", "s_per_step", "s_per_run", "s_per_sample"])


# ---------------------------------------------------------------------------------------------- scheduler share


@torch.no_grad()
def bench_scheduler_share(args):
    model, scheduler = build("paper")
    model.eval()
    rows = []
    for num_steps in (1000, 100):
        scheduler.set_timesteps(num_steps)
        t = int(scheduler.timesteps[len(scheduler.timesteps) // 2])
        for batch_size in args.batch_sizes:
            sample = torch.randint(NUM_CLASSES, (batch_size, SEQ_LEN), generator=torch.Generator().manual_seed(0))
            timesteps = torch.full((batch_size,), t, dtype=torch.long)
            logits = model(sample, timesteps).sample.float()
            scheduler.step(logits, t, sample)
            fwd, stp = math.inf, math.inf
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                logits = model(sample, timesteps).sample.float()
                t1 = time.perf_counter()
                scheduler.step(logits, t, sample)
                t2 = time.perf_counter()
                fwd, stp = min(fwd, t1 - t0), min(stp, t2 - t1)
            rows.append(
                {
                    "T_steps": num_steps,
                    "batch": batch_size,
                    "denoiser_forward_s": fwd,
                    "scheduler_step_s": stp,
                    "scheduler_share_pct": 100 * stp / (fwd + stp),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    emit("scheduler_share", rows, ["T_steps", "batch", "denoiser_forward_s", "scheduler_step_s", "scheduler_share_pct"])


# ---------------------------------------------------------------------------------------------- training


def training_child(config_name, dtype, steps, batch_size, gradient_checkpointing):
    """Runs in a fresh process: times `steps` training steps after one warm-up step, reports peak RSS."""
    import hf_multinomial.models  # noqa: F401  (imports counted in the baseline)
    import hf_multinomial.schedulers  # noqa: F401

    baseline_kb = _current_rss_kb()
    model, scheduler = build(config_name)
    model.train()
    if gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    T = scheduler.config.num_train_timesteps
    num_params = sum(p.numel() for p in model.parameters())

    def step():
        x0 = torch.randint(NUM_CLASSES, (batch_size, SEQ_LEN), generator=generator)
        t = torch.randint(T, (batch_size,), generator=generator)
        x_t = scheduler.add_noise(x0, t, generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            logits = model(x_t, t).sample
        loss = scheduler.compute_loss(logits.float(), x0, x_t, t).mean() / (SEQ_LEN * math.log(2))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    t0 = time.perf_counter()
    step()  # warm-up (allocates Adam state)
    warmup = time.perf_counter() - t0
    times = [] if steps > 0 else [warmup]  # steps=0: report the warm-up step itself (an upper bound)
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "times": times,
                "peak_rss_mib": peak_kb / 1024,
                "baseline_rss_mib": baseline_kb / 1024,
                "params_m": num_params / 1e6,
            }
        )
    )


def _current_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def bench_training(args):
    rows = []
    for config_name in args.configs:
        for dtype in args.dtypes:
            for ckpt in args.checkpointing:
                best, peak, base = math.inf, math.inf, None
                for _ in range(args.repeats):
                    steps = args.train_steps if not (config_name == "paper" and dtype == "bf16") else args.bf16_paper_steps
                    cmd = [sys.executable, __file__, "--_child", config_name, dtype, str(steps), str(args.batch_size), str(int(ckpt))]
                    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
                    if out.returncode != 0:
                        raise RuntimeError(out.stderr)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    best = min(best, min(result["times"]))
                    peak = min(peak, result["peak_rss_mib"] - result["baseline_rss_mib"])
                    base = result["baseline_rss_mib"]
                    params = result["params_m"]
                chars = args.batch_size * SEQ_LEN
                rows.append(
                    {
                        "config": config_name,
                        "params_M": round(params, 2),
                        "dtype": dtype,
                        "grad_ckpt": bool(ckpt),
                        "batch": f"{args.batch_size}x{SEQ_LEN}",
                        "s_per_step": best,
                        "chars_per_s": chars / best,
                        "peak_mem_MiB": round(peak),
                        "baseline_MiB": round(base),
                    }
                )
                print(rows[-1], file=sys.stderr, flush=True)
    emit(
        "training",
        rows,
        ["config", "params_M", "dtype", "grad_ckpt", "batch", "s_per_step", "chars_per_s", "peak_mem_MiB", "baseline_MiB"],
    )


# ---------------------------------------------------------------------------------------------- quick check


def bench_quick(args):
    """A few-minute regression check of the per-call overhead (input checks, host syncs), run in this process.

    Rows: one small-config training micro-batch as `DiffusionObjective` runs it (add_noise, forward, compute_loss,
    prior_kl, jump_to_start_nll, backward, Adam; fp32, `--batch-size` x 256); the scheduler calls of that micro-batch
    alone, on fixed logits (no model); one full 100-step batch-1 pipeline sample (not extrapolated) per
    `--quick-sampling-configs`.
    """
    from hf_multinomial.pipelines import DiscreteDiffusionPipeline

    rows = []
    model, scheduler = build("small")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    T = scheduler.config.num_train_timesteps
    batch_size = args.batch_size

    def train_step():
        x0 = torch.randint(NUM_CLASSES, (batch_size, SEQ_LEN), generator=generator)
        t = torch.randint(T, (batch_size,), generator=generator)
        x_t = scheduler.add_noise(x0, t, generator=generator)
        logits = model(x_t, t).sample.float()
        loss_t = scheduler.compute_loss(logits, x0, x_t, t)
        loss = (loss_t + scheduler.prior_kl(x0)).mean() + scheduler.jump_to_start_nll(logits, x0, x_t, t).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    x0 = torch.randint(NUM_CLASSES, (batch_size, SEQ_LEN), generator=generator)
    t = torch.randint(T, (batch_size,), generator=generator)
    logits = torch.randn(batch_size, NUM_CLASSES, SEQ_LEN, generator=generator)

    @torch.no_grad()
    def scheduler_calls():
        x_t = scheduler.add_noise(x0, t, generator=generator)
        scheduler.compute_loss(logits, x0, x_t, t)
        scheduler.prior_kl(x0)
        scheduler.jump_to_start_nll(logits, x0, x_t, t)

    for name, fn, inner in (("train_step_small_fp32", train_step, 1), ("scheduler_calls_of_a_step", scheduler_calls, 10)):
        fn()  # warm-up
        best = min(_timed(lambda: [fn() for _ in range(inner)]) / inner for _ in range(args.repeats))
        rows.append({"what": name, "batch": f"{batch_size}x{SEQ_LEN}", "seconds": best})
        print(rows[-1], file=sys.stderr, flush=True)

    for config_name in args.quick_sampling_configs:
        model, scheduler = build(config_name)
        pipe = DiscreteDiffusionPipeline(denoiser=model.eval(), scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)

        def sample():
            pipe(batch_size=1, num_inference_steps=100, generator=torch.Generator().manual_seed(0), output_type="pt")

        time_pipeline(pipe, 1, 100, 2, 0)  # warm-up
        best = min(_timed(sample) for _ in range(args.repeats))
        rows.append({"what": f"sample_100_steps_{config_name}", "batch": f"1x{SEQ_LEN}", "seconds": best})
        print(rows[-1], file=sys.stderr, flush=True)
    emit("quick", rows, ["what", "batch", "seconds"])


# ---------------------------------------------------------------------------------------------- GEMM probe


def bench_matmul(args):
    """GEMM throughput of one MLP matmul of the paper model (8192 x 512 @ 512 x 2048) in several precisions."""
    import torch.nn.functional as F

    m, k, n = args.batch_size * SEQ_LEN, 512, 2048
    a, w = torch.randn(m, k), torch.randn(n, k)
    ab, wb = a.bfloat16(), w.bfloat16()

    def gflops(fn):
        fn()
        best = min(_timed(fn) for _ in range(args.repeats))
        return 2 * m * k * n / best / 1e9

    rows = [{"variant": "fp32 linear", "GFLOP_s": gflops(lambda: F.linear(a, w))}]
    rows.append({"variant": "bf16 weights+inputs (oneDNN)", "GFLOP_s": gflops(lambda: F.linear(ab, wb))})
    with torch.backends.mkldnn.flags(enabled=False):
        rows.append({"variant": "bf16 weights+inputs (oneDNN off)", "GFLOP_s": gflops(lambda: F.linear(ab, wb))})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rows.append({"variant": "fp32 under bf16 autocast", "GFLOP_s": gflops(lambda: F.linear(a, w))})
    matmul_backend = getattr(torch.backends.mkldnn, "matmul", None)
    if matmul_backend is not None and hasattr(matmul_backend, "fp32_precision"):
        old = matmul_backend.fp32_precision
        try:
            matmul_backend.fp32_precision = "bf16"
            rows.append({"variant": "fp32, mkldnn.matmul.fp32_precision='bf16'", "GFLOP_s": gflops(lambda: F.linear(a, w))})
        finally:
            matmul_backend.fp32_precision = old
    emit("matmul", rows, ["variant", "GFLOP_s"])


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- main


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_child":
        config_name, dtype, steps, batch_size, ckpt = sys.argv[2:7]
        training_child(config_name, dtype, int(steps), int(batch_size), bool(int(ckpt)))
        return

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sampling", action="store_true", help="pipeline sampling, paper config, T=1000 and 100")
    parser.add_argument("--training", action="store_true", help="one training step: chars/s and peak memory")
    parser.add_argument("--scheduler-share", action="store_true", help="scheduler.step vs denoiser forward")
    parser.add_argument("--matmul", action="store_true", help="fp32 vs bf16 GEMM throughput on this CPU")
    parser.add_argument(
        "--quick", action="store_true", help="small-config training micro-batch, its scheduler calls, 100-step sample"
    )
    parser.add_argument(
        "--quick-sampling-configs", nargs="+", default=["small", "paper"], choices=list(CONFIGS),
        help="configurations of the --quick 100-step batch-1 sample",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the minimum is reported")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32], help="sampling batch sizes")
    parser.add_argument(
        "--sampling-max-steps",
        type=str,
        default="1:20,32:3",
        help="per batch size, how many steps to time before extrapolating (BATCH:STEPS,...)",
    )
    parser.add_argument("--configs", nargs="+", default=["paper", "small"], choices=list(CONFIGS))
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument(
        "--checkpointing", nargs="+", type=int, default=[0], choices=[0, 1], help="gradient checkpointing off/on"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="training batch (sequences of 256)")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps per subprocess")
    parser.add_argument(
        "--bf16-paper-steps",
        type=int,
        default=0,
        help="timed steps for the (very slow on AVX2) paper bf16 run; 0 times the warm-up step itself (an upper bound)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    args.max_sampling_steps = {int(b): int(s) for b, s in (p.split(":") for p in args.sampling_max_steps.split(","))}
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.sampling or args.training or args.scheduler_share or args.matmul or args.quick):
        parser.error("choose at least one of --sampling, --training, --scheduler-share, --matmul, --quick")

    print(json.dumps({"machine": machine_info()}), file=sys.stderr)
    if args.matmul:
        bench_matmul(args)
    if args.quick:
        bench_quick(args)
    if args.scheduler_share:
        bench_scheduler_share(args)
    if args.sampling:
        bench_sampling(args)
    if args.training:
        bench_training(args)


if __name__ == "__main__":
    main()
