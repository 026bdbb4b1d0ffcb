#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Learning per CPU second, characters against BPE tokens: the demo's model and time budget, once with the character
vocabulary and once with a byte-level BPE tokenizer trained on the bundled sample's training split; both evaluated
with the full ELBO in bits per character on the same held-out text, beside their trivial baselines (uniform over the
vocabulary, and a unigram model fitted on the training split's tokens).

    python scripts/compare_tokenizers.py --output_dir runs/tokenizers [--time_budget_s 390] [--vocab_size 4096]

Prints a Markdown table and, as the last line, the figures as JSON.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import HfArgumentParser

from hf_multinomial import DiscreteDiffusionPipeline
from hf_multinomial.data import CharVocabulary, bundled_text8_path, split_boundaries
from hf_multinomial.data.arguments import text_file_sequences
from hf_multinomial.data.text import read_text_bytes
from hf_multinomial.data.tokenizers import train_bpe_tokenizer
from hf_multinomial.evaluation import diffusion_negative_elbo
from hf_multinomial.training import parse_arguments, train
from hf_multinomial.training.text_diffusion import TASK


@dataclass
class CompareArguments:
    output_dir: str = field(default="runs/tokenizers", metadata={"help": "Tokenizer, models and results go here."})
    time_budget_s: float = field(default=390.0, metadata={"help": "Training seconds per model (the demo's)."})
    vocab_size: int = 4096
    evaluation_characters: int = field(default=32768, metadata={
        "help": "Held-out characters scored (the start of the bundled validation split)."})
    seed: int = 0


def token_ids(tokenizer, text: str) -> np.ndarray:
    if isinstance(tokenizer, CharVocabulary):
        return tokenizer.encode_array(text)
    return np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)


def baselines(tokenizer, train_text: str, scored_ids: torch.Tensor, characters: int) -> dict:
    """Bits per character of the uniform distribution over the vocabulary and of a unigram model (add-one smoothed
    token frequencies of the training text) on the scored tokens."""
    K = len(tokenizer)
    counts = np.bincount(token_ids(tokenizer, train_text), minlength=K) + 1.0
    log2_p = np.log2(counts / counts.sum())
    ids = scored_ids.reshape(-1).numpy()
    return {"uniform_bpc": len(ids) * math.log2(K) / characters,
            "unigram_bpc": float(-log2_p[ids].sum()) / characters}


def main():
    (args,) = HfArgumentParser(CompareArguments).parse_args_into_dataclasses()
    os.makedirs(args.output_dir, exist_ok=True)
    text = read_text_bytes(bundled_text8_path()).decode("utf-8")
    bounds = split_boundaries(len(text))
    train_text = text[slice(*bounds["train"])]
    start = bounds["validation"][0]
    held_out = os.path.join(args.output_dir, "held_out.txt")
    with open(held_out, "w") as f:
        f.write(text[start : start + args.evaluation_characters])
    train_file = os.path.join(args.output_dir, "train.txt")
    with open(train_file, "w") as f:
        f.write(train_text)

    tokenizer_dir = os.path.join(args.output_dir, f"bpe-{args.vocab_size}")
    if not os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        train_bpe_tokenizer([train_file], args.vocab_size, tokenizer_dir)

    rows = []
    for name, extra in (("characters", []), (f"BPE {args.vocab_size}", ["--tokenizer_name", tokenizer_dir])):
        out = os.path.join(args.output_dir, name.replace(" ", "-").lower())
        argv = ["--preset", "demo", "--max_train_time_s", str(args.time_budget_s), "--output_dir", out,
                "--seed", str(args.seed), "--overwrite_output_dir", *extra]
        began = time.time()
        results = train(TASK, parse_arguments(TASK, argv))
        pipe = DiscreteDiffusionPipeline.from_pretrained(out)
        seq_len = pipe.denoiser.config.max_seq_len
        input_ids, characters = text_file_sequences(held_out, pipe.vocabulary, seq_len)
        nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, input_ids,
                                      generator=torch.Generator().manual_seed(args.seed))
        rows.append({
            "model": name, "vocabulary": len(pipe.vocabulary), "steps": results["global_step"],
            "train_time_s": results["train_time_s"], "parameters": results["num_parameters"],
            "tokens_scored": int(input_ids.numel()), "characters_scored": characters,
            "bpc": float(nll.sum()) / math.log(2) / characters,
            **baselines(pipe.vocabulary, train_text, input_ids, characters),
            "wall_time_s": round(time.time() - began, 1),
        })

    print(f"\nCPU capability: {torch.backends.cpu.get_cpu_capability()}, threads: {torch.get_num_threads()}")
    print("| model | vocabulary | steps | characters scored (tokens) | full ELBO (bpc) | uniform (bpc) | "
          "unigram (bpc) | wall time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['vocabulary']} | {row['steps']} | {row['characters_scored']} "
              f"({row['tokens_scored']}) | **{row['bpc']:.3f}** | {row['uniform_bpc']:.3f} | "
              f"{row['unigram_bpc']:.3f} | {row['wall_time_s']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
