# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The `hf-multinomial` command: `demo` (train, save, reload, sample, evaluate), `bpc` and `bpp` (bits per character or
pixel of a saved diffusion pipeline or flow model, added to the `model-index` of its model card unless
`--no-update-card`), `export` (a pipeline folder for trust_remote_code). The last line printed is the result as JSON."""

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


def _load_model(model_dir):
    """A saved `DiscreteDiffusionPipeline` (a folder with model_index.json) or a saved flow model (a folder with the
    config.json of a model registered with `AutoModel`, e.g. an argmax flow)."""
    if os.path.isfile(os.path.join(model_dir, "model_index.json")):
        from .pipelines import DiscreteDiffusionPipeline

        return DiscreteDiffusionPipeline.from_pretrained(model_dir)
    if os.path.isfile(os.path.join(model_dir, "config.json")):
        from transformers import AutoModel

        return AutoModel.from_pretrained(model_dir)
    raise FileNotFoundError(
        f"--model {model_dir!r} is not a folder holding a saved pipeline (model_index.json) or model (config.json)"
    )


def _is_pipeline(model) -> bool:
    return hasattr(model, "scheduler")


def _evaluate(model, input_ids, args, unit):
    """Bits per `unit` of `model` on `input_ids`: the result dict of the command, and the bound's description for
    the model card (with its number of steps or draws)."""
    import torch

    from .evaluation import bits_per_unit, diffusion_negative_elbo, flow_negative_log_likelihood
    from .training.flows import flow_bound
    from .training.model_card import diffusion_bound

    generator = torch.Generator().manual_seed(args.seed)
    if _is_pipeline(model):
        nll = diffusion_negative_elbo(model.denoiser, model.scheduler, input_ids, batch_size=args.batch_size,
                                      estimate=args.estimate, repetitions=args.repetitions, generator=generator,
                                      progress=True)
        T = model.scheduler.config.num_train_timesteps
        bound = f"one-t estimate x {args.repetitions}" if args.estimate else f"full ELBO over T={T}"
        card_bound = diffusion_bound(T, estimate=args.estimate, repetitions=args.repetitions)
    else:
        nll = flow_negative_log_likelihood(model, input_ids, batch_size=args.batch_size,
                                           num_samples=args.num_samples, generator=generator, progress=True)
        bound = "ELBO (one draw of q)" if args.num_samples == 1 else f"IWBO with k={args.num_samples}"
        card_bound = flow_bound(args.num_samples)
    result = bits_per_unit(nll, input_ids[0].numel(), unit)
    bits = "bpc" if unit == "character" else "bpp"
    return {
        bits: result[bits],
        f"nats_per_{unit}": result["nats_per_unit"],
        "num_examples": int(input_ids.shape[0]),
        f"num_{unit}s": result["num_units"],
        "bound": bound,
    }, card_bound


def _record_in_card(args, result: dict, card_bound: str, dataset_type: str, dataset_name: str, split: str) -> dict:
    """Add `result` to the `model-index` of the model card `README.md` of the `--model` folder, if it has one and
    `--no-update-card` is not set; `result["model_card"]` says which card was updated (None: none)."""
    path = os.path.join(args.model, "README.md")
    result["model_card"] = None
    if args.no_update_card or not os.path.isfile(path):
        return result
    from .training.model_card import bits_eval_result, update_model_card_results

    metric = "bpc" if "bpc" in result else "bpp"
    entry = bits_eval_result(result[metric], metric, card_bound, dataset_type=dataset_type, dataset_name=dataset_name,
                             dataset_split=split, num_examples=result["num_examples"])
    try:
        update_model_card_results(path, [entry], model_name=os.path.basename(os.path.normpath(args.model)))
    except Exception as error:  # a card that does not parse must not cost the computed result
        print(f"hf-multinomial {args.command}: warning: {path} was not updated ({type(error).__name__}: {error})",
              file=sys.stderr)
        return result
    result["model_card"] = os.path.abspath(path)
    return result


def bpc_command(args) -> dict:
    model = _load_model(args.model)
    if _is_pipeline(model):
        vocabulary, seq_len = model.vocabulary, model.denoiser.config.max_seq_len
    else:
        from .data import CharVocabulary

        vocab_file = os.path.join(args.model, "vocabulary.json")
        vocabulary = CharVocabulary.from_pretrained(args.model) if os.path.isfile(vocab_file) else None
        seq_len = model.config.seq_len
    if vocabulary is None:
        raise ValueError(f"The model in {args.model} has no vocabulary to encode {args.text_file}")
    input_ids = _sequences_from_text_file(args.text_file, vocabulary, args.seq_len or seq_len, args.max_sequences)
    result, card_bound = _evaluate(model, input_ids, args, "character")
    name = os.path.basename(args.text_file)
    return _record_in_card(args, result, card_bound, "text-file", f"text file {name}", split=name)


def bpp_command(args) -> dict:
    from .data import load_cityscapes, synthetic_segmentation_dataset

    model = _load_model(args.model)
    height, width = model.denoiser.config.sample_size if _is_pipeline(model) else model.config.sample_size
    if args.data_root:
        data = load_cityscapes(args.data_root, size=(height, width))
        dataset_type, dataset_name = "cityscapes", "Cityscapes (8 categories)"  # the training scripts' names
    else:
        data = synthetic_segmentation_dataset(height=height, width=width, seed=args.synthetic_seed)
        dataset_type, dataset_name = "hf-multinomial/synthetic-street-maps", "synthetic street-scene maps"
    split = data[args.split].with_format("torch")
    count = len(split) if args.max_maps is None else min(args.max_maps, len(split))
    result, card_bound = _evaluate(model, split[:count]["input_ids"], args, "pixel")
    result["split"] = args.split
    return _record_in_card(args, result, card_bound, dataset_type, dataset_name, split=args.split)


def export_command(args) -> dict:
    """Make a saved diffusion pipeline loadable with `trust_remote_code` (see `hf_multinomial.export`); optionally
    upload the result to a Hub repository (by default to its branch `remote-code`)."""
    from .export import export_pipeline

    try:
        folder = export_pipeline(args.model_dir, args.output)
    except FileExistsError as error:
        raise ValueError(str(error)) from error
    result = {"exported": os.path.abspath(folder)}
    if args.push_to_hub:
        from .training.hub import push_folder_to_hub

        params = {"hub_model_id": args.push_to_hub, "hub_token": args.hub_token, "hub_private_repo": args.private}
        try:
            commit = push_folder_to_hub(params, folder, "Export for trust_remote_code", revision=args.revision or None)
        except RuntimeError as error:
            raise ValueError(str(error)) from error
        result["commit_url"] = commit.commit_url
    return result


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
    bpc.add_argument("--model", required=True, help="folder of a saved DiscreteDiffusionPipeline or argmax flow")
    bpc.add_argument("--text-file", required=True, help="text file (plain, .xz, .bz2 or .zip) in the model's alphabet")
    bpc.add_argument("--max-sequences", type=int, default=None, help="evaluate only the first N sequences")
    bpc.add_argument("--seq-len", type=int, default=None, help="sequence length (default: the denoiser's max_seq_len)")
    bpp = commands.add_parser("bpp", help="bits per pixel of a saved segmentation pipeline on Cityscapes or synthetic maps")
    bpp.add_argument("--model", required=True,
                     help="folder of a saved DiscreteDiffusionPipeline with a map denoiser, or a segmentation flow")
    bpp.add_argument("--data-root", default=None, help="Cityscapes gtFine zip or folder (default: synthetic maps)")
    bpp.add_argument("--split", choices=["train", "validation", "test"], default="test")
    bpp.add_argument("--max-maps", type=int, default=None, help="evaluate only the first N maps")
    bpp.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic maps (the demo's is 0)")
    for command in (bpc, bpp):
        command.add_argument("--batch-size", type=int, default=32)
        command.add_argument("--estimate", action="store_true", help="the cheap one-t estimate instead of the full-T ELBO")
        command.add_argument("--repetitions", type=int, default=1, help="with --estimate: average this many estimates")
        command.add_argument("--num-samples", type=int, default=1,
                             help="flows: draws of q(v | x) per example, k of the importance-weighted bound (1: ELBO)")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--no-update-card", action="store_true",
                             help="do not add the result to the model-index of the model folder's README.md")

    export = commands.add_parser("export", help="make a saved diffusion pipeline loadable with trust_remote_code, "
                                                "without hf-multinomial installed")
    export.add_argument("model_dir", help="folder of a saved DiscreteDiffusionPipeline")
    export.add_argument("--output", default=None, help="write an exported copy there (default: change model_dir)")
    export.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="then upload it to this Hub repository")
    export.add_argument("--revision", default="remote-code", help="with --push-to-hub: the branch ('' for main)")
    export.add_argument("--hub-token", default=None, help="with --push-to-hub: a token with write access")
    export.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository as private")

    args = parser.parse_args(argv)
    start = time.time()
    try:
        result = {"demo": demo_command, "bpc": bpc_command, "bpp": bpp_command, "export": export_command}[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        print(f"hf-multinomial {args.command}: error: {error}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
