#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
The multinomial diffusion loss at subword vocabulary sizes (K up to 50,257), against the cross-entropy floor.

    python scripts/benchmarks/bench_large_vocabulary.py [--repeats 3] [--baseline OLD_scheduling_multinomial.py]

Rows (each in a fresh subprocess, so that its peak memory is its own):
- `loss`: `compute_loss + prior_kl` of `MultinomialScheduler`, forward and backward, on logits `(B, K, L)` (B x L =
  8 x 256 tokens, uniform timesteps, x_t from `add_noise`), at K = 27, 4096, 32768, 50257;
- `cross_entropy`: `torch.nn.functional.cross_entropy` on the same logits, forward and backward: the floor;
- `step`: one sampling `scheduler.step` at K = 32768, batch 1 x 256;
- `transformer`: `MultinomialTransformer(num_classes=50257)` at a small width: build, forward, and one training step
  (forward, compute_loss + prior_kl, backward) on 8 x 256 tokens;
- with `--baseline PATH` (an earlier `scheduling_multinomial.py`, e.g. from `git show REV:hf_multinomial/schedulers/
  scheduling_multinomial.py`): each scheduler call of a training step at K = 4096, B x L = 16 x 256, for this
  version and for the baseline (before / after).

Time: the minimum over `--repeats` runs after one untimed run. Peak memory: the growth of the process' peak resident
set size (VmHWM in /proc/self/status, reset through /proc/self/clear_refs just before the measured call) over its
resident size before it, during the first (untimed) run. It counts every allocation of the call: for the loss rows
the gradient of the logits and all temporaries, not the logits themselves (allocated before). Where the kernel does not
let the peak be reset, `ru_maxrss` is used instead (an upper bound, since it includes earlier peaks); the table says
which.

The last line of the output is one JSON line with every row.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch


# ---------------------------------------------------------------- memory accounting


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(fn):
    """(result, peak RSS growth in MiB, method) of one call of `fn`."""
    before = _status_kib("VmRSS")
    method = "VmHWM" if _reset_peak() else "ru_maxrss"
    result = fn()
    peak = _status_kib("VmHWM") if method == "VmHWM" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result, max(0, peak - before) / 1024, method


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------- rows (run in a subprocess)


def _loss_inputs(K, B, L, T=1000, seed=0):
    from hf_multinomial import MultinomialScheduler

    g = torch.Generator().manual_seed(seed)
    scheduler = MultinomialScheduler(num_classes=K, num_train_timesteps=T)
    x0 = torch.randint(K, (B, L), generator=g)
    t = torch.randint(T, (B,), generator=g)
    x_t = scheduler.add_noise(x0, t, generator=g)
    logits = (torch.randn(B, K, L, generator=g) * 2).requires_grad_()
    return scheduler, logits, x0, x_t, t


def row_loss(args):
    scheduler, logits, x0, x_t, t = _loss_inputs(args.classes, args.batch, args.seq_len)

    return _loss_row(lambda: scheduler.compute_loss(logits, x0, x_t, t).sum() + scheduler.prior_kl(x0).sum(),
                     logits, args.repeats)


def row_cross_entropy(args):
    _, logits, x0, _, _ = _loss_inputs(args.classes, args.batch, args.seq_len)

    return _loss_row(lambda: torch.nn.functional.cross_entropy(logits, x0, reduction="sum"), logits, args.repeats)


def _loss_row(forward, logits, repeats):
    """Time and peak memory of `forward()` with its backward into `logits`, and of the forward alone."""

    def both():
        logits.grad = None
        forward().backward()

    _, peak, method = measure(both)
    with torch.no_grad():
        fwd = timed(forward, repeats)
    return {"seconds": timed(both, repeats), "forward_seconds": fwd, "peak_mib": peak, "memory": method}


def row_step(args):
    from hf_multinomial import MultinomialScheduler

    K, L = args.classes, args.seq_len
    scheduler = MultinomialScheduler(num_classes=K, num_train_timesteps=1000)
    scheduler.set_timesteps(100)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, K, L, generator=g) * 2
    sample = torch.randint(K, (1, L), generator=g)
    t = int(scheduler.timesteps[50])

    def step():
        return scheduler.step(logits, t, sample, generator=g).prev_sample

    _, peak, method = measure(step)
    return {"seconds": timed(step, args.repeats), "peak_mib": peak, "memory": method, "timestep": t}


def row_transformer(args):
    from hf_multinomial import MultinomialScheduler, MultinomialTransformer

    K, B, L = args.classes, args.batch, args.seq_len
    start = time.perf_counter()
    model = MultinomialTransformer(
        num_classes=K, max_seq_len=L, hidden_size=64, num_layers=2, num_heads=4, num_local_heads=2, local_window=32
    )
    build = time.perf_counter() - start
    scheduler = MultinomialScheduler(num_classes=K, num_train_timesteps=1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(K, (B, L), generator=g)
    t = torch.randint(1000, (B,), generator=g)
    x_t = scheduler.add_noise(x0, t, generator=g)

    def forward():
        with torch.no_grad():
            return model(x_t, t).sample

    def train_step():
        model.zero_grad(set_to_none=True)
        logits = model(x_t, t).sample
        loss = scheduler.compute_loss(logits, x0, x_t, t).sum() + scheduler.prior_kl(x0).sum()
        loss.backward()
        return logits.shape

    shape, forward_peak, method = measure(forward)
    shape = tuple(shape.shape)
    _, step_peak, _ = measure(train_step)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": build,
        "output_shape": list(shape),
        "forward_seconds": timed(forward, args.repeats),
        "forward_peak_mib": forward_peak,
        "train_step_seconds": timed(train_step, args.repeats),
        "train_step_peak_mib": step_peak,
        "memory": method,
    }


def row_calls(args):
    """Each scheduler call of a training step (`add_noise`, `compute_loss`, `jump_to_start_nll`, `prior_kl`, backward of
    both losses), for this version or for the scheduler module at `args.module`; and the small denoiser's forward."""
    if args.module:
        import importlib.util

        spec = importlib.util.spec_from_file_location("baseline_scheduling_multinomial", args.module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        Scheduler = module.MultinomialScheduler
    else:
        from hf_multinomial import MultinomialScheduler as Scheduler
    K, B, L, T = args.classes, args.batch, args.seq_len, 1000
    scheduler = Scheduler(num_classes=K, num_train_timesteps=T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(K, (B, L), generator=g)
    t = torch.randint(T, (B,), generator=g)
    x_t = scheduler.add_noise(x0, t, generator=g)
    logits = (torch.randn(B, K, L, generator=g) * 2).requires_grad_()
    out = {}

    def record(name, fn, grad=False):
        context = torch.enable_grad() if grad else torch.no_grad()
        with context:
            _, peak, method = measure(fn)
            out[name] = {"seconds": timed(fn, args.repeats), "peak_mib": peak, "memory": method}

    record("add_noise", lambda: scheduler.add_noise(x0, t, generator=g))
    record("compute_loss", lambda: scheduler.compute_loss(logits, x0, x_t, t), grad=True)
    record("jump_to_start_nll", lambda: scheduler.jump_to_start_nll(logits, x0, x_t, t), grad=True)
    record("prior_kl", lambda: scheduler.prior_kl(x0))

    def backward_only():
        logits.grad = None
        loss = scheduler.compute_loss(logits, x0, x_t, t).sum() + scheduler.jump_to_start_nll(logits, x0, x_t, t).sum()
        start = time.perf_counter()
        loss.backward()
        return time.perf_counter() - start

    with torch.enable_grad():
        backward_only()
        out["backward of both losses"] = {"seconds": min(backward_only() for _ in range(args.repeats))}

        def both():
            logits.grad = None
            (scheduler.compute_loss(logits, x0, x_t, t).sum() + scheduler.jump_to_start_nll(logits, x0, x_t, t).sum()).backward()

        _, peak, method = measure(both)
        out["both losses, forward + backward"] = {"seconds": timed(both, args.repeats), "peak_mib": peak, "memory": method}
    if not args.module:
        from hf_multinomial import MultinomialTransformer

        model = MultinomialTransformer(
            num_classes=K, max_seq_len=L, hidden_size=128, num_layers=4, num_heads=4, num_local_heads=2, local_window=32
        )
        with torch.no_grad():
            out["denoiser forward (small config)"] = {"seconds": timed(lambda: model(x_t, t), args.repeats)}
    return out


ROWS = {"loss": row_loss, "cross_entropy": row_cross_entropy, "step": row_step, "transformer": row_transformer,
        "calls": row_calls}


# ---------------------------------------------------------------- driver


def run_row(kind, classes, batch, seq_len, repeats, threads, module=None):
    command = [sys.executable, os.path.abspath(__file__), "--row", kind, "--classes", str(classes), "--batch", str(batch),
               "--seq-len", str(seq_len), "--repeats", str(repeats), "--threads", str(threads)]
    if module:
        command += ["--module", module]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, nargs="+", default=[27, 4096, 32768, 50257])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--step-classes", type=int, default=32768)
    parser.add_argument("--transformer-classes", type=int, default=50257)
    parser.add_argument("--calls-classes", type=int, default=4096)
    parser.add_argument("--calls-batch", type=int, default=16)
    parser.add_argument("--baseline", default=None, help="an earlier scheduling_multinomial.py for the before/after rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--row", choices=sorted(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--module", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.row:
        args.classes = args.classes[0]
        print(json.dumps(ROWS[args.row](args)))
        return

    machine = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(f"torch.backends.cpu.get_cpu_capability() = {machine['cpu_capability']!r}; torch {machine['torch']}; "
          f"torch.get_num_threads() = {machine['threads']}; {machine['cores']} cores; load average {machine['load_average']}")
    rows = []
    B, L, R, N = args.batch, args.seq_len, args.repeats, args.threads

    print(f"\n### Loss, forward + backward, B x L = {B} x {L}\n")
    print("| K | logits (MiB) | compute_loss + prior_kl: s | forward only: s | peak MiB | cross_entropy: s | "
          "forward only: s | peak MiB | time ratio | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for K in args.classes:
        loss = run_row("loss", K, B, L, R, N)
        ce = run_row("cross_entropy", K, B, L, R, N)
        rows.append({"row": "loss", "classes": K, "loss": loss, "cross_entropy": ce})
        if "error" in loss or "error" in ce:
            print(f"| {K} | error: {loss.get('error') or ce.get('error')} |")
            continue
        time_ratio = loss["seconds"] / ce["seconds"]
        mem_ratio = loss["peak_mib"] / max(ce["peak_mib"], 1e-9)
        rows[-1].update(time_ratio=time_ratio, memory_ratio=mem_ratio)
        print(f"| {K} | {B * K * L * 4 / 2**20:.0f} | {loss['seconds']:.3f} | {loss['forward_seconds']:.3f} | "
              f"{loss['peak_mib']:.0f} | {ce['seconds']:.3f} | {ce['forward_seconds']:.3f} | {ce['peak_mib']:.0f} | "
              f"{time_ratio:.2f} | {mem_ratio:.2f} |")
    print(f"\n(peak memory: {rows[0]['loss'].get('memory', '?')})")

    step = run_row("step", args.step_classes, 1, L, R, N)
    rows.append({"row": "step", "classes": args.step_classes, **step})
    print(f"\n### One sampling step, K = {args.step_classes}, batch 1 x {L}\n")
    if "error" in step:
        print(f"error: {step['error']}")
    else:
        print(f"{step['seconds'] * 1e3:.1f} ms, peak {step['peak_mib']:.0f} MiB (t = {step['timestep']})")

    tr = run_row("transformer", args.transformer_classes, B, L, R, N)
    rows.append({"row": "transformer", "classes": args.transformer_classes, **tr})
    print(f"\n### MultinomialTransformer(num_classes={args.transformer_classes}), width 64, 2 layers, {B} x {L}\n")
    if "error" in tr:
        print(f"error: {tr['error']}")
    else:
        print(f"{tr['parameters'] / 1e6:.2f} M parameters, built in {tr['build_seconds']:.2f} s; output {tr['output_shape']}; "
              f"forward {tr['forward_seconds']:.2f} s (peak {tr['forward_peak_mib']:.0f} MiB); training step "
              f"{tr['train_step_seconds']:.2f} s (peak {tr['train_step_peak_mib']:.0f} MiB)")

    CB = args.calls_batch
    after = run_row("calls", args.calls_classes, CB, L, R, N)
    before = run_row("calls", args.calls_classes, CB, L, R, N, module=os.path.abspath(args.baseline)) if args.baseline else None
    rows.append({"row": "calls", "classes": args.calls_classes, "after": after, "before": before})
    print(f"\n### Scheduler calls of a training step, K = {args.calls_classes}, B x L = {CB} x {L}\n")
    print("| call | before: s | before: peak MiB | after: s | after: peak MiB | speed-up |")
    print("|---|---|---|---|---|---|")
    for name, value in (after if "error" not in after else {}).items():
        old = (before or {}).get(name, {})
        old_s = f"{old['seconds']:.3f}" if "seconds" in old else "-"
        old_m = f"{old['peak_mib']:.0f}" if "peak_mib" in old else "-"
        new_m = f"{value['peak_mib']:.0f}" if "peak_mib" in value else "-"
        speed = f"{old['seconds'] / value['seconds']:.1f}x" if "seconds" in old else "-"
        print(f"| {name} | {old_s} | {old_m} | {value['seconds']:.3f} | {new_m} | {speed} |")
    if "error" in after:
        print(f"error: {after['error']}")

    targets = {}
    for row in rows:
        if row["row"] == "loss" and row["classes"] == 32768 and "time_ratio" in row:
            targets["K=32768 loss time <= 3x cross-entropy"] = row["time_ratio"] <= 3
            targets["K=32768 loss peak memory <= 3x cross-entropy"] = row["memory_ratio"] <= 3
        if row["row"] == "loss" and row["classes"] == 50257 and "seconds" in row["loss"]:
            targets["K=50257 loss runs in 8 GB"] = row["loss"]["peak_mib"] + B * 50257 * L * 4 / 2**20 < 8 * 1024
    print("\n### Targets\n")
    for name, ok in targets.items():
        print(f"- {name}: {'met' if ok else 'NOT met'}")
    print(json.dumps({"benchmark": "large_vocabulary", "machine": machine, "rows": rows, "targets": targets}))


if __name__ == "__main__":
    main()
