# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The `hf-multinomial` command: `demo` (train, save, reload, sample, evaluate) and `bpc` (bits per character)."""

import argparse
import json
import os
import sys
import time


def _sequences_from_text_file(path, vocabulary, seq_len, max_sequences):
    """Non-overlapping sequences of `seq_len` ids cut from a whole text file (remainder dropped)."""
    import torch

    from .data.text import read_text_bytes

    raw = read_text_bytes(path)
    ids = vocabulary.encode_array(raw if vocabulary.byte_level else raw.decode("utf-8"))
    count = len(ids) // seq_len
    if max_sequences is not None:
        count = min(count, max_sequences)
    if count == 0:
        raise ValueError(f"{path} holds {len(ids)} characters, fewer than one sequence of {seq_len}")
    return torch.from_numpy(ids[: count * seq_len].reshape(count, seq_len)).long()


def bpc_command(args) -> dict:
    import torch

    from .evaluation import bits_per_unit, diffusion_negative_elbo
    from .pipelines import DiscreteDiffusionPipeline

    if not os.path.isdir(args.model):
        raise FileNotFoundError(f"--model {args.model!r} is not a folder holding a saved pipeline")
    pipe = DiscreteDiffusionPipeline.from_pretrained(args.model)
    if pipe.vocabulary is None:
        raise ValueError(f"The pipeline in {args.model} has no vocabulary to encode {args.text_file}")
    seq_len = args.seq_len or pipe.denoiser.config.max_seq_len
    input_ids = _sequences_from_text_file(args.text_file, pipe.vocabulary, seq_len, args.max_sequences)
    generator = torch.Generator().manual_seed(args.seed)
    nll = diffusion_negative_elbo(
        pipe.denoiser,
        pipe.scheduler,
        input_ids,
        batch_size=args.batch_size,
        estimate=args.estimate,
        generator=generator,
        progress=True,
    )
    result = bits_per_unit(nll, seq_len, "character")
    return {
        "bpc": result["bpc"],
        "nats_per_character": result["nats_per_unit"],
        "num_sequences": int(input_ids.shape[0]),
        "num_characters": result["num_units"],
        "bound": "one-t estimate" if args.estimate else f"full ELBO over T={pipe.scheduler.config.num_train_timesteps}",
    }


def demo_command(args) -> dict:
    from .training.demo import run_demo

    return run_demo(output_dir=args.output_dir, time_budget_s=args.time_budget_s, seed=args.seed)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hf-multinomial", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small text diffusion model on the bundled Wikipedia text, then sample")
    demo.add_argument("--output-dir", default="hf-multinomial-demo", help="where the pipeline is saved")
    demo.add_argument("--time-budget-s", type=float, default=None, help="training wall-clock budget (default: the preset's)")
    demo.add_argument("--seed", type=int, default=0)

    bpc = commands.add_parser("bpc", help="bits per character of a saved pipeline on a text file")
    bpc.add_argument("--model", required=True, help="folder of a saved DiscreteDiffusionPipeline")
    bpc.add_argument("--text-file", required=True, help="text file (plain, .xz, .bz2 or .zip) in the model's alphabet")
    bpc.add_argument("--max-sequences", type=int, default=None, help="evaluate only the first N sequences")
    bpc.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the denoiser's max_seq_len)")
    bpc.add_argument("--batch-size", type=int, default=32)
    bpc.add_argument("--estimate", action="store_true", help="the cheap one-t estimate instead of the full-T ELBO")
    bpc.add_argument("--seed", type=int, default=0)

    args = parser.parse_args(argv)
    start = time.time()
    try:
        result = demo_command(args) if args.command == "demo" else bpc_command(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"hf-multinomial {args.command}: error: {error}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
