#!/usr/bin/env python
"""Fast CPU inference options for multinomial text diffusion: fp32, bf16 autocast, int8 dynamic quantization and
torch.compile (`hf_multinomial.inference.prepare_for_inference`), their sampling speed and their effect on the bound.

Not a test: nothing imports this file. It prints the CPU features the options depend on, a markdown table per part
and, as its last line, one JSON line (`{"benchmark": "sampling_precision", "machine": ..., "rows": [...]}`).

    python scripts/benchmarks/bench_sampling_precision.py --demo-model /tmp/demo-model            # the full run
    python scripts/benchmarks/bench_sampling_precision.py --demo-model /tmp/demo-model --quick    # ~1 min smoke run

Sampling: one 256-character batch-1 sample with `--steps` (100) denoiser calls of the paper-configuration denoiser
(`MultinomialTransformer()` defaults, random weights seeded; the cost does not depend on the weights) through
`DiscreteDiffusionPipeline(..., output_type="pt")`, for each option; the minimum over `--repeats` runs after one
untimed warm-up sample of 1 step (which holds the compilation of the compiled options, reported separately).
"best+compile" compiles whichever of bf16 and int8 sampled faster in this run. Ratios are to fp32 in the same run.

Accuracy (with `--demo-model DIR`, a saved pipeline such as the demo's): the full-T negative ELBO in bits per
character of `--eval-sequences` held-out rows of the bundled text (the demo's validation split) under each option,
with the same generator seed for every option, and its change against fp32 (target: |change| <= 0.02 bits).
"""

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_utils import machine_info, print_table  # noqa: E402

NUM_CLASSES, SEQ_LEN, T_PAPER = 27, 256, 1000
OPTIONS = ("fp32", "bf16", "int8", "fp32+compile", "best+compile")
TARGET_BPC_CHANGE = 0.02


def parse_option(option, best):
    precision, _, compiled = option.partition("+")
    return (best if precision == "best" else precision), compiled == "compile"


def build_paper(seed):
    from hf_multinomial.models import MultinomialTransformer
    from hf_multinomial.schedulers import MultinomialScheduler

    torch.manual_seed(seed)
    model = MultinomialTransformer().eval()  # the paper's text8 model: 12 layers, width 512, T = 1000, 27 classes
    assert model.config.num_classes == NUM_CLASSES and model.config.max_seq_len == SEQ_LEN
    scheduler = MultinomialScheduler(num_classes=NUM_CLASSES, num_train_timesteps=T_PAPER)
    return model, scheduler


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_sampling(args):
    from hf_multinomial.inference import prepare_for_inference
    from hf_multinomial.pipelines import DiscreteDiffusionPipeline

    model, scheduler = build_paper(args.seed)
    rows, seconds = [], {}
    best = None
    for option in args.options:
        if option.startswith("best") and best is None:
            timed = {p: seconds[p] for p in ("bf16", "int8") if p in seconds}
            if not timed:
                print(f"skipping {option}: time bf16 or int8 first", file=sys.stderr)
                continue
            best = min(timed, key=timed.get)
        precision, compiled = parse_option(option, best)
        start = time.perf_counter()
        denoiser = prepare_for_inference(model, precision, compile=compiled)
        prepare_s = time.perf_counter() - start
        pipe = DiscreteDiffusionPipeline(denoiser=denoiser, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)

        def sample(steps):
            pipe(batch_size=1, num_inference_steps=steps, output_type="pt", generator=torch.Generator().manual_seed(0))

        warmup_s = _timed(lambda: sample(1))
        run_s = min(_timed(lambda: sample(args.steps)) for _ in range(args.repeats))
        seconds[option] = run_s
        rows.append({
            "what": "sampling", "option": option if not option.startswith("best") else f"{best}+compile",
            "precision": precision, "compiled": compiled, "steps": args.steps, "batch": f"1x{SEQ_LEN}",
            "prepare_s": prepare_s, "warmup_s": warmup_s, "s_per_sample": run_s, "s_per_step": run_s / args.steps,
        })
        print(rows[-1], file=sys.stderr, flush=True)
    fp32 = seconds.get("fp32")
    for row in rows:
        row["ratio_to_fp32"] = row["s_per_sample"] / fp32 if fp32 else None
        row["speedup_vs_fp32"] = fp32 / row["s_per_sample"] if fp32 else None
    print_table(
        f"Sampling: paper configuration, one {SEQ_LEN}-character sample, {args.steps} steps, batch 1 "
        f"(min of {args.repeats}; ratio = time / fp32 time)",
        rows,
        ["option", "prepare_s", "warmup_s", "s_per_sample", "s_per_step", "ratio_to_fp32", "speedup_vs_fp32"],
    )
    return rows, best


def bench_accuracy(args, best):
    import hf_multinomial  # noqa: F401  (makes the saved pipeline's components resolvable)
    from hf_multinomial.data import load_bundled_text8
    from hf_multinomial.evaluation import bits_per_unit, diffusion_negative_elbo
    from hf_multinomial.inference import prepare_for_inference
    from hf_multinomial.pipelines import DiscreteDiffusionPipeline

    pipe = DiscreteDiffusionPipeline.from_pretrained(args.demo_model)
    model, scheduler = pipe.denoiser.eval(), pipe.scheduler
    seq_len = model.config.max_seq_len
    # The demo's held-out rows (hf_multinomial.training.demo.run_demo): the validation split of the bundled text.
    validation = load_bundled_text8(seq_len=seq_len)["validation"].with_format("torch")
    input_ids = validation[: args.eval_sequences]["input_ids"]
    T = scheduler.config.num_train_timesteps
    rows, reference = [], None
    for option in args.eval_options:
        if option.startswith("best") and best is None:
            print(f"skipping {option} in the evaluation: no sampling row chose the best option", file=sys.stderr)
            continue
        precision, compiled = parse_option(option, best)
        denoiser = prepare_for_inference(model, precision, compile=compiled)
        start = time.perf_counter()
        nll = diffusion_negative_elbo(denoiser, scheduler, input_ids, batch_size=args.eval_batch_size, estimate=False,
                                      generator=torch.Generator().manual_seed(args.seed))
        elapsed = time.perf_counter() - start
        bpc = bits_per_unit(nll, seq_len, "character")["bpc"]
        if option == "fp32":
            reference = bpc
        change = None if reference is None else bpc - reference
        rows.append({
            "what": "elbo", "option": option if not option.startswith("best") else f"{best}+compile",
            "precision": precision, "compiled": compiled, "T": T, "sequences": int(input_ids.shape[0]),
            "seq_len": seq_len, "bpc": bpc, "change_vs_fp32": change,
            "within_target": None if change is None else abs(change) <= TARGET_BPC_CHANGE, "seconds": elapsed,
        })
        print(rows[-1], file=sys.stderr, flush=True)
    print_table(
        f"Full-T negative ELBO (T={T}) of {input_ids.shape[0]} held-out sequences of {seq_len} characters, "
        f"{args.demo_model} (target |change| <= {TARGET_BPC_CHANGE} bits)",
        rows, ["option", "bpc", "change_vs_fp32", "within_target", "seconds"],
    )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="denoiser calls per timed sample")
    parser.add_argument("--repeats", type=int, default=2, help="timed samples per option; the minimum is reported")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS, help="options to time")
    parser.add_argument("--demo-model", default=None, help="a saved pipeline folder to evaluate the bound with")
    parser.add_argument("--eval-sequences", type=int, default=16, help="held-out sequences for the bound")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="sequences per denoiser batch in the bound")
    parser.add_argument("--eval-options", nargs="+", default=None, choices=OPTIONS,
                        help="options to evaluate the bound under (default: --options; fp32 first is the reference)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 5 steps, 1 repeat, 2 eval sequences, the bound under fp32/bf16/int8 only")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.repeats, args.eval_sequences = 5, 1, 2
        if args.eval_options is None:
            args.eval_options = [o for o in ("fp32", "bf16", "int8") if o in args.options]
    if args.eval_options is None:
        args.eval_options = list(args.options)
    if "fp32" in args.eval_options:  # the reference comes first
        args.eval_options = ["fp32"] + [o for o in args.eval_options if o != "fp32"]
    for name in ("steps", "repeats", "eval_sequences", "eval_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.demo_model is not None and not os.path.isfile(os.path.join(args.demo_model, "model_index.json")):
        parser.error(f"--demo-model {args.demo_model!r} is not a saved pipeline folder (no model_index.json)")
    if args.threads:
        torch.set_num_threads(args.threads)

    from hf_multinomial.inference import cpu_features, resolve_precision

    features = cpu_features()
    machine = {**machine_info(), "cpu_features": features, "auto_precision": resolve_precision("auto")}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"torch.backends.cpu.get_cpu_capability() = {features['capability']!r}")
    print(f"CPU flags (present): {json.dumps(features['flags'])}")
    print(f"CPU flags (usable at this capability): {json.dumps(features['usable'])}")
    print(f"precision='auto' resolves to {machine['auto_precision']!r} on this CPU")

    rows, best = bench_sampling(args)
    if args.demo_model is not None:
        rows += bench_accuracy(args, best)
    print(json.dumps({"benchmark": "sampling_precision", "machine": machine, "rows": rows}))


if __name__ == "__main__":
    main()
