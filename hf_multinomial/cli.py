# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The `hf-multinomial` command: `demo` (train, save, reload, sample, evaluate), `bpc` and `bpp` (bits per character or
pixel of a saved pipeline)."""

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


def _load_pipeline(model_dir):
    from .pipelines import DiscreteDiffusionPipeline

    if not os.path.isfile(os.path.join(model_dir, "model_index.json")):
        raise FileNotFoundError(f"--model {model_dir!r} is not a folder holding a saved pipeline (no model_index.json)")
    return DiscreteDiffusionPipeline.from_pretrained(model_dir)


def _evaluate(pipe, input_ids, args, unit) -> dict:
    import torch

    from .evaluation import bits_per_unit, diffusion_negative_elbo

    nll = diffusion_negative_elbo(
        pipe.denoiser,
        pipe.scheduler,
        input_ids,
        batch_size=args.batch_size,
        estimate=args.estimate,
        repetitions=args.repetitions,
        generator=torch.Generator().manual_seed(args.seed),
        progress=True,
    )
    T = pipe.scheduler.config.num_train_timesteps
    result = bits_per_unit(nll, input_ids[0].numel(), unit)
    bits = "bpc" if unit == "character" else "bpp"
    return {
        bits: result[bits],
        f"nats_per_{unit}": result["nats_per_unit"],
        "num_examples": int(input_ids.shape[0]),
        f"num_{unit}s": result["num_units"],
        "bound": f"one-t estimate x {args.repetitions}" if args.estimate else f"full ELBO over T={T}",
    }


def bpc_command(args) -> dict:
    pipe = _load_pipeline(args.model)
    if pipe.vocabulary is None:
        raise ValueError(f"The pipeline in {args.model} has no vocabulary to encode {args.text_file}")
    seq_len = args.seq_len or pipe.denoiser.config.max_seq_len
    input_ids = _sequences_from_text_file(args.text_file, pipe.vocabulary, seq_len, args.max_sequences)
    return _evaluate(pipe, input_ids, args, "character")


def bpp_command(args) -> dict:
    from .data import load_cityscapes, synthetic_segmentation_dataset

    pipe = _load_pipeline(args.model)
    height, width = pipe.denoiser.config.sample_size
    if args.data_root:
        data = load_cityscapes(args.data_root, size=(height, width))
    else:
        data = synthetic_segmentation_dataset(height=height, width=width, seed=args.synthetic_seed)
    split = data[args.split].with_format("torch")
    count = len(split) if args.max_maps is None else min(args.max_maps, len(split))
    return {**_evaluate(pipe, split[:count]["input_ids"], args, "pixel"), "split": args.split}


def demo_command(args) -> dict:
    from .training.demo import run_demo

    from .training.demo import run_segmentation_demo

    if args.task == "segmentation":
        output_dir = args.output_dir or "hf-multinomial-demo-segmentation"
        return run_segmentation_demo(output_dir=output_dir, time_budget_s=args.time_budget_s, seed=args.seed)
    output_dir = args.output_dir or "hf-multinomial-demo"
    return run_demo(output_dir=output_dir, time_budget_s=args.time_budget_s, seed=args.seed)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hf-multinomial", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="train a small diffusion model on CPU, reload it, sample and evaluate it")
    demo.add_argument("--task", choices=["text", "segmentation"], default="text",
                      help="text: the bundled Wikipedia text; segmentation: synthetic street-scene maps")
    demo.add_argument("--output-dir", default=None, help="where the pipeline is saved (default: hf-multinomial-demo[-segmentation])")
    demo.add_argument("--time-budget-s", type=float, default=None, help="training wall-clock budget (default: the preset's)")
    demo.add_argument("--seed", type=int, default=0)

    bpc = commands.add_parser("bpc", help="bits per character of a saved pipeline on a text file")
    bpc.add_argument("--model", required=True, help="folder of a saved DiscreteDiffusionPipeline")
    bpc.add_argument("--text-file", required=True, help="text file (plain, .xz, .bz2 or .zip) in the model's alphabet")
    bpc.add_argument("--max-sequences", type=int, default=None, help="evaluate only the first N sequences")
    bpc.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the denoiser's max_seq_len)")
    bpp = commands.add_parser("bpp", help="bits per pixel of a saved segmentation pipeline on Cityscapes or synthetic maps")
    bpp.add_argument("--model", required=True, help="folder of a saved DiscreteDiffusionPipeline with a map denoiser")
    bpp.add_argument("--data-root", default=None, help="Cityscapes gtFine zip or folder (default: synthetic maps)")
    bpp.add_argument("--split", choices=["train", "validation", "test"], default="test")
    bpp.add_argument("--max-maps", type=int, default=None, help="evaluate only the first N maps")
    bpp.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic maps (the demo's is 0)")
    for command in (bpc, bpp):
        command.add_argument("--batch-size", type=int, default=32)
        command.add_argument("--estimate", action="store_true", help="the cheap one-t estimate instead of the full-T ELBO")
        command.add_argument("--repetitions", type=int, default=1, help="with --estimate: average this many estimates")
        command.add_argument("--seed", type=int, default=0)

    args = parser.parse_args(argv)
    start = time.time()
    try:
        result = {"demo": demo_command, "bpc": bpc_command, "bpp": bpp_command}[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"hf-multinomial {args.command}: error: {error}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
