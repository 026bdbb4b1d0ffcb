#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Sample quality against the number of steps, for a saved text pipeline (the demo model by default).

For each S (default T, T/2, T/5, T/10, T/20) it reports:
- the S-step sampler's own negative ELBO on held-out text, in bits per character (`hf-multinomial bpc
  --num-inference-steps S`): an exact bound for the ancestral sampler;
- for samples of the ancestral sampler and of the sampler with the corrector: the judge's generative bits per
  character (`text_judge.py`, a character GPT-2 trained on the bundled training split), the unigram entropy of the
  samples (low values flag repetitive samples, which the judge scores deceptively well) and the seconds per sample.
The corrector has no known bound; the judge is what compares it.

    python scripts/benchmarks/text_judge.py train --output_dir runs/judge
    python scripts/benchmarks/bench_sampling_steps.py --model_dir hf-multinomial-demo --judge_dir runs/judge

It prints the machine, the judge's own validation bpc, a markdown table and, as its last line, one JSON line.
"""

import importlib.util
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from transformers import HfArgumentParser

from hf_multinomial import DiscreteDiffusionPipeline
from hf_multinomial.data import load_bundled_text8
from hf_multinomial.evaluation import bits_per_unit, diffusion_negative_elbo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_utils import machine_info, print_table  # noqa: E402

_spec = importlib.util.spec_from_file_location("text_judge", os.path.join(os.path.dirname(__file__), "text_judge.py"))
text_judge = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(text_judge)


@dataclass
class Arguments:
    model_dir: str = field(metadata={"help": "A saved text DiscreteDiffusionPipeline (e.g. hf-multinomial-demo)."})
    judge_dir: str = field(metadata={"help": "A judge saved by `text_judge.py train`."})
    steps: Optional[List[int]] = field(default=None, metadata={"help": "The S to compare (default T, T/2, T/5, T/10, "
                                                                        "T/20)."})
    eval_sequences: int = field(default=64, metadata={"help": "Held-out sequences for the bound (the demo's 64)."})
    num_samples: int = field(default=16, metadata={"help": "Samples per sampler and S, drawn as one batch."})
    corrector_steps: int = field(default=1, metadata={"help": "Corrector moves after each ancestral step."})
    corrector_positions: int = field(default=1, metadata={"help": "Positions redrawn per move (1: exact)."})
    seed: int = field(default=0)


def _sample(pipe, arguments, steps: int, **options):
    start = time.perf_counter()
    texts = pipe(batch_size=arguments.num_samples, num_inference_steps=steps,
                 generator=torch.Generator().manual_seed(arguments.seed), **options).samples
    return texts, (time.perf_counter() - start) / arguments.num_samples


def main(argv=None) -> dict:
    (arguments,) = HfArgumentParser(Arguments).parse_args_into_dataclasses(argv)
    for name in ("eval_sequences", "num_samples", "corrector_positions"):
        if getattr(arguments, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(arguments, name)}")
    if arguments.corrector_steps < 0:
        raise ValueError(f"--corrector_steps must be an integer >= 0, got {arguments.corrector_steps}")
    machine = machine_info()
    print(json.dumps({"machine": machine}))
    pipe = DiscreteDiffusionPipeline.from_pretrained(arguments.model_dir)
    pipe.set_progress_bar_config(disable=True)
    judge = text_judge.load_judge(arguments.judge_dir)
    vocabulary = text_judge.load_judge_vocabulary(arguments.judge_dir)
    judge_info_path = os.path.join(arguments.judge_dir, text_judge.INFO_NAME)
    judge_info = json.load(open(judge_info_path)) if os.path.isfile(judge_info_path) else {}
    print(f"judge: {arguments.judge_dir}, its own validation bpc {judge_info.get('validation_bpc')}")

    T = pipe.scheduler.config.num_train_timesteps
    steps = arguments.steps or sorted({T, T // 2, T // 5, T // 10, T // 20} - {0}, reverse=True)
    seq_len = pipe.denoiser.config.max_seq_len
    held_out = load_bundled_text8(seq_len=seq_len)["validation"].with_format("torch")
    input_ids = held_out[: arguments.eval_sequences]["input_ids"]
    corrector = dict(corrector_steps=arguments.corrector_steps, corrector_positions=arguments.corrector_positions)

    rows = []
    for S in steps:
        start = time.perf_counter()
        nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, input_ids, num_inference_steps=S,
                                      generator=torch.Generator().manual_seed(arguments.seed))
        bound = bits_per_unit(nll, seq_len, "character")["bpc"]
        bound_s = time.perf_counter() - start
        row = {"steps": S, "bound_bpc": bound, "bound_seconds": round(bound_s, 1)}
        for name, options in (("ancestral", {}), ("corrector", corrector)):
            texts, seconds = _sample(pipe, arguments, S, **options)
            score = text_judge.score_texts(judge, texts, vocabulary)
            per_sample = score["per_sample_bpc"]  # the samples have one length: their mean is the judge bpc
            spread = statistics.stdev(per_sample) / math.sqrt(len(per_sample)) if len(per_sample) > 1 else float("nan")
            row.update({f"{name}_judge_bpc": score["bpc"], f"{name}_judge_bpc_stderr": spread,
                        f"{name}_unigram_entropy": score["unigram_entropy"],
                        f"{name}_seconds_per_sample": seconds, f"{name}_first_sample": texts[0]})
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("first_sample")}), file=sys.stderr)

    data_score = text_judge.score_texts(judge, pipe.vocabulary.batch_decode(input_ids.tolist()), vocabulary)
    print(f"\nModel {arguments.model_dir} (T={T}), {input_ids.shape[0]} held-out sequences of {seq_len} characters; "
          f"{arguments.num_samples} samples per cell; corrector: {arguments.corrector_steps} move(s) of "
          f"{arguments.corrector_positions} position(s) after each step. Judge validation bpc "
          f"{judge_info.get('validation_bpc')}; the held-out text itself scores {data_score['bpc']:.3f} under the "
          f"judge, unigram entropy {data_score['unigram_entropy']:.3f}. Judge bpc: mean ± standard error over the "
          f"samples.\n")
    table = []
    for r in rows:
        cells = {"S": r["steps"], "S-step bound (bpc)": f"{r['bound_bpc']:.3f}"}
        for name in ("ancestral", "corrector"):
            cells[f"judge bpc, {name}"] = f"{r[f'{name}_judge_bpc']:.3f} ± {r[f'{name}_judge_bpc_stderr']:.3f}"
            cells[f"unigram H, {name}"] = f"{r[f'{name}_unigram_entropy']:.3f}"
            cells[f"s / sample, {name}"] = f"{r[f'{name}_seconds_per_sample']:.3f}"
        table.append(cells)
    print_table(None, table, list(table[0]))
    for r in rows:
        print(f"S={r['steps']}: ancestral {r['ancestral_first_sample']!r}\n       corrector {r['corrector_first_sample']!r}")
    result = {"benchmark": "sampling_steps", "machine": machine, "model_dir": arguments.model_dir,
              "judge_validation_bpc": judge_info.get("validation_bpc"), "held_out_judge_bpc": data_score["bpc"],
              "held_out_unigram_entropy": data_score["unigram_entropy"], "num_samples": arguments.num_samples,
              "corrector": corrector, "rows": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as error:  # bad input: one line, status 2
        print(f"bench_sampling_steps.py: error: {error}", file=sys.stderr)
        sys.exit(2)
