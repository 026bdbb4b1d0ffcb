# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Multinomial text diffusion training (Hoogeboom et al., 2021, Section 6.1): presets, model / scheduler / data
construction, the diffusion objective, and the final pipeline and model card.

The loop itself is [`hf_multinomial.training.trainer.train_loop`]; all diffusion math is the scheduler's.

    from hf_multinomial.training.text_diffusion import parse_args, train
    result = train(parse_args(["--preset", "small", "--output_dir", "out", "--max_train_time_s", "180"]))
"""

import argparse
import os
from typing import Any, Dict, List, Optional

from accelerate.utils import set_seed

from ..data import CharVocabulary, load_enwik8, load_text8, load_text_file
from ..data.text import bundled_text8_path
from ..models import MultinomialTransformer
from ..schedulers import MultinomialScheduler
from ..pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline
from .arguments import add_training_arguments, apply_preset, parse_script_args, training_config
from .diffusion import train_diffusion
from .model_card import bits_eval_result, diffusion_bound, training_model_card
from .trainer import make_accelerator


# The paper's text models (Tables 6 and 7) and two small ones. Every key can be overridden by a flag of the same name.
PRESETS: Dict[str, Dict[str, Any]] = {
    "text8": dict(
        vocabulary="text8", seq_len=256, num_train_timesteps=1000,
        num_layers=12, hidden_size=512, num_heads=16, num_local_heads=8, local_window=128, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned", conv_kernel_size=0,
        train_batch_size=32, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=None,
        num_train_epochs=40, checkpointing_steps=5000, aux_loss_weight=0.0,
    ),
    "enwik8": dict(
        vocabulary="bytes", seq_len=320, num_train_timesteps=4000,
        num_layers=12, hidden_size=512, num_heads=16, num_local_heads=8, local_window=128, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned", conv_kernel_size=0,
        train_batch_size=32, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=None,
        num_train_epochs=40, checkpointing_steps=5000, aux_loss_weight=0.0,
    ),
    # The demo: leaves the unigram plateau within minutes on a 2-core CPU. Three narrow layers after an input
    # convolution, local heads that see +-3 characters, T = 100, a high learning rate and the auxiliary jump loss.
    "small": dict(
        vocabulary="text8", seq_len=256, num_train_timesteps=100,
        num_layers=3, hidden_size=128, num_heads=4, num_local_heads=2, local_window=4, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned", conv_kernel_size=5,
        train_batch_size=16, learning_rate=2e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=30, max_grad_norm=1.0,
        num_train_epochs=3, checkpointing_steps=250, aux_loss_weight=1.0,
    ),
    # For tests: seconds per hundred steps.
    "tiny": dict(
        vocabulary="text8", seq_len=32, num_train_timesteps=10,
        num_layers=1, hidden_size=32, num_heads=2, num_local_heads=1, local_window=8, mlp_ratio=2.0,
        dropout=0.0, position_embedding="learned", conv_kernel_size=0,
        train_batch_size=8, learning_rate=3e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=20, aux_loss_weight=0.0,
    ),
}

MODEL_KEYS = ("num_layers", "hidden_size", "num_heads", "num_local_heads", "local_window", "mlp_ratio", "dropout",
              "position_embedding", "conv_kernel_size")


# ---------------------------------------------------------------------------------------------- arguments


def add_text_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data flags shared by the text training scripts (diffusion and argmax flows)."""
    data = p.add_argument_group("data (default: the bundled Wikipedia sample in text8 format)")
    data.add_argument("--dataset", choices=["text8", "enwik8"], default=None, help="A real dataset; needs --data_dir.")
    data.add_argument("--data_dir", default=None, help="Folder (or file) holding text8/text8.zip or enwik8/enwik8.zip.")
    data.add_argument("--text_file", default=None, help="Any text file, split 90/5/5 by position.")
    data.add_argument("--vocabulary", choices=["text8", "bytes"], default=None,
                      help="text8: space and a-z; bytes: the 256 byte values. Default from the preset/dataset.")
    data.add_argument("--cache_dir", default=None, help="Where prepared datasets are cached.")
    data.add_argument("--seq_len", type=int, default=None)
    data.add_argument("--dataloader_num_workers", type=int, default=0)


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a multinomial diffusion model on text (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="Hyperparameter set: text8 / enwik8 (the paper), small (2-core CPU), tiny (tests). "
                        "Flags left unset take the preset's value.")
    add_text_data_arguments(p)

    model = p.add_argument_group("model and diffusion")
    model.add_argument("--num_layers", type=int, default=None)
    model.add_argument("--hidden_size", type=int, default=None)
    model.add_argument("--num_heads", type=int, default=None)
    model.add_argument("--num_local_heads", type=int, default=None)
    model.add_argument("--local_window", type=int, default=None)
    model.add_argument("--mlp_ratio", type=float, default=None)
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument("--position_embedding", choices=["learned", "sinusoidal"], default=None)
    model.add_argument("--conv_kernel_size", type=int, default=None,
                       help="Width of the denoiser's input convolution (0: none, as in the paper).")
    model.add_argument("--num_train_timesteps", type=int, default=None, help="T (the paper: 1000 text8, 4000 enwik8).")
    model.add_argument("--aux_loss_weight", type=float, default=None,
                       help="Weight of the auxiliary loss -log p(x_0 | x_t) of the reverse jump to the data "
                            "(scheduler.jump_to_start_nll; same optimum as the ELBO; 0 = the paper's pure ELBO).")

    add_training_arguments(p, default_output_dir="text-diffusion-model", units="sequences")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (`sys.argv[1:]` by default) and fill the unset ones from the preset."""
    return parse_script_args(build_arg_parser(), "train_text_diffusion.py", argv, resolve_preset)


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    return resolve_text_data_arguments(apply_preset(args, PRESETS[args.preset]))


def resolve_text_data_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """Check the data flags and set the vocabulary a named dataset implies."""
    if args.dataset:
        args.vocabulary = {"text8": "text8", "enwik8": "bytes"}[args.dataset]
    if args.dataset and not args.data_dir:
        raise ValueError(f"--dataset {args.dataset} needs --data_dir (nothing is downloaded)")
    if args.dataset and args.text_file:
        raise ValueError("Pass either --dataset/--data_dir or --text_file, not both")
    return args


# ---------------------------------------------------------------------------------------------- construction


def load_data(args: argparse.Namespace):
    """`(DatasetDict with input_ids, CharVocabulary)` for the data flags."""
    vocabulary = CharVocabulary.bytes() if args.vocabulary == "bytes" else CharVocabulary.text8()
    if args.dataset == "text8":
        data = load_text8(args.data_dir, seq_len=args.seq_len, cache_dir=args.cache_dir)
        vocabulary = CharVocabulary.text8()
    elif args.dataset == "enwik8":
        data = load_enwik8(args.data_dir, seq_len=args.seq_len, cache_dir=args.cache_dir)
    else:
        path = args.text_file or bundled_text8_path()
        data = load_text_file(path, vocabulary, seq_len=args.seq_len, cache_dir=args.cache_dir)
    return data.with_format("torch"), vocabulary


def data_description(args: argparse.Namespace) -> str:
    if args.dataset:
        return f"{args.dataset} ({args.data_dir})"
    if args.text_file:
        return f"text file {os.path.basename(args.text_file)}"
    return "the bundled English Wikipedia sample in text8 format (CC BY-SA)"


def build_model(args: argparse.Namespace, num_classes: int) -> MultinomialTransformer:
    return MultinomialTransformer(
        num_classes=num_classes, max_seq_len=args.seq_len, num_train_timesteps=args.num_train_timesteps,
        **{key: getattr(args, key) for key in MODEL_KEYS},
    )


# ---------------------------------------------------------------------------------------------- the objective


# ---------------------------------------------------------------------------------------------- the run


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """
    Train with `args` (from [`parse_args`]) and, on the main process, write the pipeline (denoiser, scheduler,
    vocabulary) with `save_pretrained` to `args.output_dir`, its model card `README.md` and `train_results.json`.

    Returns the results dict (on every process): output_dir, global_step, train_time_s, final loss / bpc (mean of the
    last 10% of steps), validation_bpc_estimate, history (per-step logs of this run).
    """
    args = resolve_preset(args)
    config = training_config(args, "text_diffusion")
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        data, vocabulary = load_data(args)
    set_seed(args.seed)  # identical initial weights on every process
    model = build_model(args, len(vocabulary))
    scheduler = MultinomialScheduler(num_classes=len(vocabulary), num_train_timesteps=args.num_train_timesteps)
    pipeline = DiscreteDiffusionPipeline(denoiser=model, scheduler=scheduler, vocabulary=vocabulary)
    return train_diffusion(args, config, accelerator, data, pipeline, unit="character", write_model_card=write_model_card)


# ---------------------------------------------------------------------------------------------- model card


def dataset_id(args: argparse.Namespace):
    """`(dataset id, pretty name)` of the training data, for the model card's results."""
    if args.dataset:
        return args.dataset, args.dataset
    if args.text_file:
        return "text-file", f"text file {os.path.basename(args.text_file)}"
    return "hf-multinomial/enwiki-text8-sample", "English Wikipedia sample in text8 format"


def model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]):
    """A `huggingface_hub.ModelCard` filled from `model_cards/text_diffusion.md`, with the one-t validation estimate in
    its `model-index` (push it with `card.push_to_hub`)."""
    type_, name = dataset_id(args)
    results = []
    if stats.get("validation_bpc_estimate") is not None:
        results.append(bits_eval_result(
            stats["validation_bpc_estimate"], "bpc", diffusion_bound(args.num_train_timesteps, estimate=True),
            dataset_type=type_, dataset_name=name, dataset_split="validation",
            num_examples=stats.get("num_validation_examples"),
        ))
    return training_model_card(
        "text_diffusion", args, stats,
        hyperparameter_keys=("preset", "seq_len", "num_train_timesteps", *MODEL_KEYS, "train_batch_size",
                             "gradient_accumulation_steps", "learning_rate", "lr_decay_per_epoch", "lr_warmup_steps",
                             "max_grad_norm", "aux_loss_weight", "mixed_precision", "use_ema", "ema_decay", "seed"),
        card_data_kwargs=dict(
            datasets={"text8": ["text8"], "enwik8": ["enwik8"]}.get(args.dataset),
            language=["en"] if args.vocabulary == "text8" else None,
            tags=["multinomial-diffusion", "discrete-diffusion", "text-generation", "character-level", "hf-multinomial"],
            pipeline_tag="text-generation",
        ),
        eval_results=results,
        data_description=data_description(args),
        samples=list(samples),
        vocabulary_size=256 if args.vocabulary == "bytes" else 27,
    )


def write_model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]) -> str:
    path = os.path.join(args.output_dir, "README.md")
    model_card(args, stats, samples).save(path)
    return path
