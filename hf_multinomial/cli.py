# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The `hf-multinomial` command: `demo` (train, save, reload, sample, evaluate), `bpc` and `bpp` (bits per character or
pixel of a saved diffusion pipeline or flow model, added to the `model-index` of its model card unless
`--no-update-card`), `export` (a pipeline folder for trust_remote_code), `sample` (text or maps from a saved pipeline),
`train-tokenizer` (a byte-level BPE tokenizer made offline). The last line printed is the result as JSON."""

import argparse
import json
import math
import os
import re
import sys
import time


# --------------------------------------------------------------------------- flag types
# argparse turns an `ArgumentTypeError` into one line `hf-multinomial <command>: error: argument --flag: <message>`
# (after the usage) and exit status 2, so the message need not repeat the flag.
def _integer(minimum: int):
    """An argparse type: an integer >= `minimum`."""
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}")
        return value

    return check


_positive_int = _integer(1)
_count = _integer(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, got {text!r}")
    return value


def _existing(kind: str, is_kind=None):
    """An argparse type: a path that exists and, with `is_kind`, is a `kind` ("file" or "folder")."""

    def check(text: str) -> str:
        if not os.path.exists(text):
            raise argparse.ArgumentTypeError(f"no such {kind}: {text!r}")
        if is_kind is not None and not is_kind(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind}")
        return text

    return check


_existing_folder = _existing("folder", os.path.isdir)
_existing_file = _existing("file", os.path.isfile)
_existing_path = _existing("file or folder")


# --------------------------------------------------------------------------- models
def _load_model(model_dir):
    """A saved `DiscreteDiffusionPipeline` (a folder with model_index.json) or a saved flow model (a folder with the
    config.json of a model registered with `AutoModel`, e.g. an argmax flow). Any failure to load (truncated
    weights, a broken config) is a ValueError naming the folder."""
    if os.path.isfile(os.path.join(model_dir, "model_index.json")):
        from .pipelines import DiscreteDiffusionPipeline

        loader = DiscreteDiffusionPipeline.from_pretrained
    elif os.path.isfile(os.path.join(model_dir, "config.json")):
        from transformers import AutoModel

        loader = AutoModel.from_pretrained
    else:
        raise FileNotFoundError(
            f"--model {model_dir!r} is not a folder holding a saved pipeline (model_index.json) or model (config.json)"
        )
    try:
        return loader(model_dir)
    except Exception as error:
        raise ValueError(f"cannot load the model in --model {model_dir!r}: {type(error).__name__}: {error}") from error


def _is_pipeline(model) -> bool:
    return hasattr(model, "scheduler")


def _model_data(model):
    """`(kind, shape, description)` of a loaded model: kind "text" with shape `(seq_len,)`, or "maps" with shape
    `(height, width)`, or None for a model of neither; the description says what the model is, for messages."""
    if _is_pipeline(model):
        config = model.denoiser.config
        what = f"a DiscreteDiffusionPipeline with a {type(model.denoiser).__name__} denoiser"
        if getattr(config, "max_seq_len", None) is not None:
            return "text", (int(config.max_seq_len),), f"{what} (text, max_seq_len={config.max_seq_len})"
        size = getattr(config, "sample_size", None)
        if size is not None:
            height, width = (size, size) if isinstance(size, int) else tuple(size)
            return "maps", (int(height), int(width)), f"{what} (segmentation maps of {height} x {width})"
        return None, None, what
    config = getattr(model, "config", None)
    what = f"a {type(model).__name__}"
    shape = tuple(getattr(config, "sample_shape", None) or ())  # the flow models: (seq_len,) or (height, width)
    if len(shape) == 1:
        return "text", shape, f"{what} (text, seq_len={shape[0]})"
    if len(shape) == 2:
        return "maps", shape, f"{what} (segmentation maps of {shape[0]} x {shape[1]})"
    return None, None, what


def _require(model, kind: str, args) -> tuple:
    """The shape of the examples of `model` if it models `kind` ("text" or "maps"); else a ValueError naming the
    --model folder, what it holds and the command that fits it."""
    found, shape, what = _model_data(model)
    if found != kind:
        other = {"text": "bpc", "maps": "bpp"}.get(found)
        hint = f"; use hf-multinomial {other}" if other else ""
        needs = "a text model" if kind == "text" else "a segmentation-map model"
        raise ValueError(f"--model {args.model!r} holds {what}: {args.command} needs {needs}{hint}")
    return shape


def _check_bound_flags(model, args) -> None:
    """The bound flags that do not apply to the model are errors, not silently ignored."""
    if _is_pipeline(model):
        if args.num_samples is not None:
            raise ValueError(f"--num-samples {args.num_samples} is for flow models; --model {args.model!r} holds a "
                             "diffusion pipeline (use --estimate / --repetitions)")
        if args.repetitions is not None and not args.estimate:
            raise ValueError(f"--repetitions {args.repetitions} needs --estimate (the full ELBO is computed once)")
        T = model.scheduler.config.num_train_timesteps
        if args.num_inference_steps is not None and args.num_inference_steps > T:
            raise ValueError(f"--num-inference-steps {args.num_inference_steps} exceeds the T={T} steps of the "
                             f"scheduler in --model {args.model!r}")
    elif args.estimate or args.repetitions is not None or args.num_inference_steps is not None:
        flag = "--estimate" if args.estimate else (f"--repetitions {args.repetitions}" if args.repetitions is not None
                                                   else f"--num-inference-steps {args.num_inference_steps}")
        raise ValueError(f"{flag} is for diffusion pipelines; --model {args.model!r} holds a flow model "
                         "(use --num-samples)")


def _evaluate(model, input_ids, args, unit, num_units=None):
    """Bits per `unit` of `model` on `input_ids` (`num_units` units in all; default one per token): the result dict
    of the command, and the bound's description for the model card (with its number of steps or draws)."""
    import torch

    from .evaluation import bits_per_unit, diffusion_negative_elbo, flow_negative_log_likelihood
    from .metrics import UNIT_KEYS
    from .training.model_card import diffusion_bound, flow_bound

    generator = torch.Generator().manual_seed(args.seed)
    if _is_pipeline(model):
        repetitions = args.repetitions or 1
        steps = args.num_inference_steps
        nll = diffusion_negative_elbo(model.denoiser, model.scheduler, input_ids, batch_size=args.batch_size,
                                      estimate=args.estimate, repetitions=repetitions, generator=generator,
                                      progress=True, num_inference_steps=steps)
        T = model.scheduler.config.num_train_timesteps
        sampler = f"the {steps}-step sampler, T={T}" if steps is not None else f"T={T}"
        bound = f"one-t estimate x {repetitions} ({sampler})" if args.estimate else \
            (f"full ELBO over T={T}" if steps is None else f"ELBO of {sampler}")
        card_bound = diffusion_bound(T, estimate=args.estimate, repetitions=repetitions, num_inference_steps=steps)
    else:
        num_samples = args.num_samples or 1
        nll = flow_negative_log_likelihood(model, input_ids, batch_size=args.batch_size,
                                           num_samples=num_samples, generator=generator, progress=True)
        bound = "ELBO (one draw of q)" if num_samples == 1 else f"IWBO with k={num_samples}"
        card_bound = flow_bound(num_samples)
    result = bits_per_unit(nll, input_ids[0].numel(), unit, total_units=num_units)
    bits = UNIT_KEYS[unit]
    return {
        bits: result[bits],
        f"nats_per_{unit}": result["nats_per_unit"],
        "num_examples": int(input_ids.shape[0]),
        f"num_{unit}s": result["num_units"],
        "num_tokens": int(input_ids.numel()),
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

    metric = "bpc" if "bpc" in result else "bpp"  # the key _evaluate wrote
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
    (model_seq_len,) = _require(model, "text", args)
    _check_bound_flags(model, args)
    if _is_pipeline(model):
        vocabulary = model.vocabulary
    else:
        from .data import CharVocabulary

        vocab_file = os.path.join(args.model, "vocabulary.json")
        vocabulary = CharVocabulary.from_pretrained(args.model) if os.path.isfile(vocab_file) else None
    if vocabulary is None:
        raise ValueError(f"The model in {args.model!r} has no vocabulary to encode {args.text_file!r}")
    seq_len = model_seq_len if args.seq_len is None else args.seq_len
    if _is_pipeline(model) and seq_len > model_seq_len:
        raise ValueError(f"--seq-len {seq_len} exceeds the max_seq_len={model_seq_len} of the denoiser in "
                         f"--model {args.model!r}")
    from .data.arguments import text_file_sequences

    input_ids, num_characters = text_file_sequences(args.text_file, vocabulary, seq_len, args.max_sequences)
    result, card_bound = _evaluate(model, input_ids, args, "character", num_characters)
    name = os.path.basename(args.text_file)
    return _record_in_card(args, result, card_bound, "text-file", f"text file {name}", split=name)


def bpp_command(args) -> dict:
    from .data.arguments import MapDataArguments, load_map_data

    model = _load_model(args.model)
    height, width = _require(model, "maps", args)
    _check_bound_flags(model, args)
    data_args = MapDataArguments(data_root=args.data_root, height=height, width=width)
    data = load_map_data(data_args, seed=args.synthetic_seed)
    dataset_type, dataset_name = data_args.dataset_id()  # the names the training tasks give the data
    split = data[args.split]
    if len(split) == 0:
        raise ValueError(f"the {args.split} split of {data_args.description()} holds no maps")
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


def _infill_known_ids(template: str, mask_char: str, vocabulary, num_samples: int, seq_len: int):
    """`(known_ids, known_mask)` for `--infill`: every character of `template` but `mask_char` is kept, the rest
    (and everything after the template) is generated. Character vocabularies only: a subword tokenizer has no
    position per character."""
    import torch

    from .data import CharVocabulary

    if not isinstance(vocabulary, CharVocabulary):
        raise ValueError(f"--infill needs a character vocabulary; this model's is a {type(vocabulary).__name__} "
                         "(use --prefix)")
    if len(mask_char) != 1:
        raise ValueError(f"--mask-char must be one character, got {mask_char!r}")
    if len(template) > seq_len:
        raise ValueError(f"--infill has {len(template)} characters, more than the model's seq_len={seq_len}")
    known = [i for i, c in enumerate(template) if c != mask_char]
    ids = torch.zeros(seq_len, dtype=torch.long)
    mask = torch.zeros(seq_len, dtype=torch.bool)
    if known:
        ids[known] = torch.tensor(vocabulary.encode("".join(template[i] for i in known)), dtype=torch.long)
        mask[known] = True
    return ids.expand(num_samples, -1).clone(), mask.expand(num_samples, -1).clone()


def _text_rows_image(rows, path: str) -> None:
    """Save text rows (one per chain state) as a PNG with PIL's default font."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    width = max(int(font.getlength(row)) for row in rows) + 8
    line = 14
    image = Image.new("RGB", (width, line * len(rows) + 8), "white")
    draw = ImageDraw.Draw(image)
    for i, row in enumerate(rows):
        draw.text((4, 4 + i * line), row, fill="black", font=font)
    image.save(path)


def sample_command(args) -> dict:
    """Draw samples from a saved diffusion pipeline: text (optionally continuing --prefix or filling --infill) or
    segmentation maps, written to --output (text lines, or a PNG grid of maps), and the generation chain of the
    first samples to --chain (a PNG)."""
    import torch

    from .pipelines import make_grid

    model = _load_model(args.model)
    if not _is_pipeline(model):
        raise ValueError(f"--model {args.model!r} holds a {type(model).__name__}; sample needs a saved "
                         "DiscreteDiffusionPipeline")
    kind, shape, what = _model_data(model)
    if kind != "text" and (args.prefix is not None or args.infill is not None):
        raise ValueError(f"--prefix and --infill need a text model; --model {args.model!r} holds {what}")
    if args.prefix is not None and args.infill is not None:
        raise ValueError("Pass either --prefix or --infill, not both")
    if args.output is not None and kind == "maps" and not args.output.lower().endswith(".png"):
        raise ValueError(f"--output {args.output!r}: maps are written as a PNG grid; give a .png file")
    if args.chain is not None and not args.chain.lower().endswith(".png"):
        raise ValueError(f"--chain {args.chain!r}: the chain is written as a PNG; give a .png file")
    known = {}
    if args.infill is not None:
        known_ids, known_mask = _infill_known_ids(args.infill, args.mask_char, model.vocabulary, args.num_samples,
                                                  shape[0])
        known = {"known_ids": known_ids, "known_mask": known_mask}
    precision = model.set_inference_precision(args.precision, compile=args.compile)  # after the checks: int8 copies
    output_type = "np" if kind == "maps" else ("text" if model.vocabulary is not None else "pt")
    out = model(batch_size=args.num_samples, num_inference_steps=args.num_inference_steps, prefix=args.prefix,
                output_type=output_type, return_chain=args.chain is not None,
                generator=torch.Generator().manual_seed(args.seed), temperature=args.temperature,
                corrector_steps=args.corrector_steps, corrector_positions=args.corrector_positions,
                corrector_selection_tau=args.corrector_selection_tau, **known)
    samples = out.samples
    result = {"num_samples": args.num_samples,
              "num_inference_steps": args.num_inference_steps or model.scheduler.config.num_train_timesteps,
              "temperature": args.temperature, "corrector_steps": args.corrector_steps,
              "corrector_positions": args.corrector_positions, "precision": precision, "compiled": args.compile}
    if kind == "maps":
        if args.output is not None:
            make_grid(samples, palette=model.config.palette, scale=2).save(args.output)
    else:
        samples = [s if isinstance(s, str) else " ".join(map(str, s)) for s in
                   (samples if output_type == "text" else samples.tolist())]
        if args.output is not None:
            with open(args.output, "w") as f:
                f.write("\n".join(samples) + "\n")
        else:
            for text in samples:
                print(text)
        result["samples"] = samples
    if args.chain is not None:
        if kind == "maps":
            make_grid([state[: min(4, args.num_samples)] for state in out.chain], palette=model.config.palette,
                      scale=2).save(args.chain)
        else:
            rows = [state[0] if isinstance(state[0], str) else " ".join(map(str, state[0].tolist()))
                    for state in out.chain]
            _text_rows_image(rows, args.chain)
        result["chain"] = os.path.abspath(args.chain)
    if args.output is not None:
        result["output"] = os.path.abspath(args.output)
    return result


def train_tokenizer_command(args) -> dict:
    """Train a byte-level BPE tokenizer on text files and save it as a transformers tokenizer folder."""
    from .data.tokenizers import train_bpe_tokenizer

    if os.path.exists(os.path.join(args.output, "tokenizer.json")):
        raise FileExistsError(f"--output {args.output!r} already holds a tokenizer; choose another folder")
    tokenizer = train_bpe_tokenizer(args.files, args.vocab_size, args.output, min_frequency=args.min_frequency)
    return {"tokenizer": os.path.abspath(args.output), "vocab_size": len(tokenizer), "files": args.files}


def demo_command(args) -> dict:
    from .training.demo import run_demo, run_segmentation_demo

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
    demo.add_argument("--time-budget-s", type=_positive_float, default=None,
                      help="training wall-clock budget in seconds (default: the preset's)")
    demo.add_argument("--seed", type=int, default=0)

    bpc = commands.add_parser("bpc", help="bits per character of a saved pipeline on a text file")
    bpc.add_argument("--model", required=True, type=_existing_folder,
                     help="folder of a saved DiscreteDiffusionPipeline or argmax flow")
    bpc.add_argument("--text-file", required=True, type=_existing_file,
                     help="text file (plain, .xz, .bz2, .gz or .zip) in the model's alphabet")
    bpc.add_argument("--max-sequences", type=_positive_int, default=None, help="evaluate only the first N sequences")
    bpc.add_argument("--seq-len", type=_positive_int, default=None,
                     help="sequence length (default: the denoiser's max_seq_len, or the flow's seq_len)")
    bpp = commands.add_parser("bpp", help="bits per pixel of a saved segmentation pipeline on Cityscapes or synthetic maps")
    bpp.add_argument("--model", required=True, type=_existing_folder,
                     help="folder of a saved DiscreteDiffusionPipeline with a map denoiser, or a segmentation flow")
    bpp.add_argument("--data-root", default=None, type=_existing_path, help="Cityscapes gtFine zip or folder (default: synthetic maps)")
    bpp.add_argument("--split", choices=["train", "validation", "test"], default="test")
    bpp.add_argument("--max-maps", type=_positive_int, default=None, help="evaluate only the first N maps")
    bpp.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic maps (the demo's is 0)")
    for command in (bpc, bpp):
        command.add_argument("--batch-size", type=_positive_int, default=32)
        command.add_argument("--estimate", action="store_true",
                             help="diffusion: the cheap one-t estimate instead of the full-T ELBO")
        command.add_argument("--repetitions", type=_positive_int, default=None,
                             help="diffusion, with --estimate: average this many estimates (default 1)")
        command.add_argument("--num-inference-steps", type=_positive_int, default=None,
                             help="diffusion: the bound of the sampler with this many steps, at most T (default: T, "
                                  "the full bound)")
        command.add_argument("--num-samples", type=_positive_int, default=None,
                             help="flows: draws of q(v | x) per example, k of the importance-weighted bound "
                                  "(default 1: the ELBO)")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--no-update-card", action="store_true",
                             help="do not add the result to the model-index of the model folder's README.md")

    export = commands.add_parser("export", help="make a saved diffusion pipeline loadable with trust_remote_code, "
                                                "without hf-multinomial installed")
    export.add_argument("model_dir", type=_existing_folder, help="folder of a saved DiscreteDiffusionPipeline")
    export.add_argument("--output", default=None, help="write an exported copy there (default: change model_dir)")
    export.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="then upload it to this Hub repository")
    export.add_argument("--revision", default="remote-code", help="with --push-to-hub: the branch ('' for main)")
    export.add_argument("--hub-token", default=None, help="with --push-to-hub: a token with write access")
    export.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository as private")

    sample = commands.add_parser("sample", help="draw text or segmentation maps from a saved diffusion pipeline")
    sample.add_argument("--model", required=True, type=_existing_folder, help="folder of a saved DiscreteDiffusionPipeline")
    sample.add_argument("--num-samples", type=_positive_int, default=4)
    sample.add_argument("--num-inference-steps", type=_positive_int, default=None,
                        help="denoiser calls, at most T, with exact step skipping (default: T)")
    sample.add_argument("--prefix", default=None, help="text every sample starts with")
    sample.add_argument("--infill", default=None,
                        help="a template: its characters are kept, --mask-char positions (and the rest) generated")
    sample.add_argument("--mask-char", default="_", help="the unknown-character mark of --infill")
    sample.add_argument("--temperature", type=_positive_float, default=1.0,
                        help="divides the logits before each step (below 1: sharper); only 1 samples the bound's model")
    sample.add_argument("--corrector-steps", type=_count, default=0,
                        help="corrector moves after each step, one denoiser call each (default 0: ancestral only)")
    sample.add_argument("--corrector-positions", type=_positive_int, default=1,
                        help="positions redrawn per corrector move (1: exact Metropolis-within-Gibbs)")
    sample.add_argument("--corrector-selection-tau", type=_positive_float, default=1.0,
                        help="how strongly a corrector move prefers uncertain positions (large: uniform choice)")
    sample.add_argument("--precision", choices=["fp32", "bf16", "int8", "auto"], default="fp32",
                        help="the denoiser's arithmetic: bf16 autocast, int8 linear layers, or auto (the fastest known "
                             "for this CPU: int8 with VNNI, bf16 with AVX512-BF16/AMX, else fp32)")
    sample.add_argument("--compile", action="store_true", help="run the denoiser through torch.compile")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--output", default=None, help="text lines, or for maps a PNG grid (default: print text)")
    sample.add_argument("--chain", default=None, help="the generation chain of the first samples as a PNG")

    tokenizer = commands.add_parser("train-tokenizer", help="train a byte-level BPE tokenizer offline and save it "
                                                             "as a transformers tokenizer folder")
    tokenizer.add_argument("--files", nargs="+", required=True, type=_existing_file,
                           help="training text files (plain, .xz, .bz2, .gz or .zip)")
    tokenizer.add_argument("--vocab-size", type=_positive_int, required=True,
                           help="tokens, at least the 256 bytes (fewer when the text has fewer merges)")
    tokenizer.add_argument("--min-frequency", type=_positive_int, default=2, help="least count of a merged pair")
    tokenizer.add_argument("--output", required=True, help="the folder to save it in (AutoTokenizer loads it)")

    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # a bad flag: argparse printed the usage and one "error:" line
        return exit.code if isinstance(exit.code, int) else 2
    start = time.time()
    try:
        commands = {"demo": demo_command, "bpc": bpc_command, "bpp": bpp_command, "export": export_command,
                    "sample": sample_command, "train-tokenizer": train_tokenizer_command}
        result = commands[args.command](args)
    except Exception as error:  # every failure is one line and status 2, never a traceback
        print(f"hf-multinomial {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.time() - start, 1)
    print(json.dumps(result))
    return 0


def _one_line(error: BaseException) -> str:
    """The message of `error` on one line; for an exception other than ValueError / OSError (the errors of bad
    input), prefixed with its type, as it is a bug or an unexpected failure."""
    message = re.sub(r"\s*\n\s*", " ", str(error)).strip()
    if isinstance(error, (ValueError, OSError)) and message:
        return message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
