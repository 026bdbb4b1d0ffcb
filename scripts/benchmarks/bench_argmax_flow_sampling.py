#!/usr/bin/env python
"""Sampling time of the argmax flows for one 256-character text8 sample (the paper's Table 10), on the CPU.

Not a test. Prints a markdown table and, as its last line, one JSON line (`{"benchmark": ..., "rows": [...]}`).

    python scripts/benchmarks/bench_argmax_flow_sampling.py                      # paper presets, 10 runs each
    python scripts/benchmarks/bench_argmax_flow_sampling.py --presets small_ar small_coupling --repeats 3

Each row builds the model of a preset of `hf_multinomial.training.argmax_flow` (random weights: the sampling cost
does not depend on them) and times one sampling pass, `model.sample_codes(1)` (`model.sample` repeats the pass for a
sequence that decodes to an unused Cartesian code, which a random binary-coded model nearly always does): mean and standard deviation over `--repeats` runs after one
warm-up run, like the paper ("a single text sample of length 256 averaged over 10 runs").
"""

import argparse
import json
import statistics
import time
from dataclasses import asdict, fields

import torch

from hf_multinomial.flows import ArgmaxFlowConfig, ArgmaxFlowModel
from hf_multinomial.training.argmax_flow import PRESETS, ArgmaxFlowArguments


def time_sampling(preset: str, seq_len: int, repeats: int, batch_size: int) -> dict:
    settings = PRESETS[preset]
    model_args = ArgmaxFlowArguments(**{f.name: settings[f.name] for f in fields(ArgmaxFlowArguments)
                                        if f.name in settings})
    torch.manual_seed(0)
    model = ArgmaxFlowModel(ArgmaxFlowConfig(num_classes=27, seq_len=seq_len, **asdict(model_args))).eval()
    generator = torch.Generator().manual_seed(0)
    model.sample_codes(batch_size, generator=generator)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.sample_codes(batch_size, generator=generator)
        times.append(time.perf_counter() - start)
    return {
        "preset": preset, "flow_type": settings["flow_type"], "seq_len": seq_len, "batch_size": batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mean_s": statistics.mean(times), "std_s": statistics.stdev(times) if len(times) > 1 else 0.0,
        "repeats": repeats, "threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["text8_ar", "text8_coupling"], choices=sorted(PRESETS))
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [time_sampling(preset, args.seq_len, args.repeats, args.batch_size) for preset in args.presets]
    print("| preset | flow | parameters | sample time (s), mean +- sd |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['preset']} | {row['flow_type']} | {row['parameters'] / 1e6:.2f} M | "
              f"{row['mean_s']:.3f} +- {row['std_s']:.3f} |")
    print(json.dumps({"benchmark": "argmax_flow_sampling", "rows": rows}))


if __name__ == "__main__":
    main()
