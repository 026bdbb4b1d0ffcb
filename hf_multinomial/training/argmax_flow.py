# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Argmax flows on text (Hoogeboom et al., 2021, Section 6.1 and Tables 6, 7): presets, data and model construction,
and the final model, vocabulary and model card. The loop is [`hf_multinomial.training.trainer.train_loop`].

    from hf_multinomial.training.argmax_flow import parse_args, train
    result = train(parse_args(["--preset", "small_coupling", "--output_dir", "out", "--max_train_time_s", "180"]))
"""

import argparse
import os
from typing import Any, Dict, List, Optional

from accelerate.utils import set_seed

from ..flows.configuration_argmax_flow import FLOW_TYPES, INVERSES, ArgmaxFlowConfig
from ..flows.modeling_argmax_flow import ArgmaxFlowModel
from .arguments import add_training_arguments, apply_preset, parse_script_args, training_config
from .flows import flow_bound, train_flow
from .model_card import bits_eval_result, training_model_card
from .text_diffusion import (add_text_data_arguments, data_description, dataset_id, load_data,
                             resolve_text_data_arguments)
from .trainer import make_accelerator

_PAPER_AR = dict(
    flow_type="autoregressive", inverse="thresholding", cartesian_base=2, hidden_size=2048, num_layers=2,
    num_flow_steps=1, num_mixtures=27, context_size=512, context_layers=1, input_dropout=0.25,
    train_batch_size=64, optimizer="adam", learning_rate=1e-3, lr_decay_per_epoch=0.995, lr_warmup_steps=0,
    max_grad_norm=None, num_train_epochs=40, checkpointing_steps=5000,
)
_PAPER_COUPLING = dict(
    flow_type="coupling", inverse="thresholding", cartesian_base=2, hidden_size=512, num_layers=2,
    num_flow_steps=8, num_mixtures=27, context_size=512, context_layers=1, input_dropout=0.05,
    train_batch_size=16, optimizer="adamax", learning_rate=1e-3, lr_decay_per_epoch=0.995, lr_warmup_steps=0,
    max_grad_norm=None, num_train_epochs=40, checkpointing_steps=5000,
)

# The paper's models (Tables 6 and 7) and small ones for a 2-core CPU. Every key can be overridden by its flag.
PRESETS: Dict[str, Dict[str, Any]] = {
    "text8_ar": dict(_PAPER_AR, vocabulary="text8", seq_len=256),
    "enwik8_ar": dict(_PAPER_AR, vocabulary="bytes", seq_len=320),
    "text8_coupling": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=256),
    "enwik8_coupling": dict(_PAPER_COUPLING, vocabulary="bytes", seq_len=320, hidden_size=768, input_dropout=0.1,
                            train_batch_size=32, num_train_epochs=20),
    "small_ar": dict(_PAPER_AR, vocabulary="text8", seq_len=64, hidden_size=256, num_layers=1, context_size=64,
                     input_dropout=0.0, train_batch_size=32, lr_warmup_steps=20, max_grad_norm=1.0,
                     num_train_epochs=3, checkpointing_steps=250),
    # 4-minute trials on the bundled text picked these over 27 logistics, context 64, lr 1e-3, base 3 and 8 steps of
    # width 64 (validation bpc 4.11 against 4.23-4.46); coupling flows learn far more slowly than the AR flow.
    "small_coupling": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=64, hidden_size=128, num_layers=1,
                           num_flow_steps=4, num_mixtures=8, context_size=128, input_dropout=0.0,
                           train_batch_size=32, learning_rate=3e-3, lr_warmup_steps=20, max_grad_norm=1.0,
                           num_train_epochs=3, checkpointing_steps=250),
    # For tests: a second per few dozen steps.
    "tiny": dict(_PAPER_COUPLING, vocabulary="text8", seq_len=16, hidden_size=16, num_layers=1, num_flow_steps=2,
                 num_mixtures=4, context_size=8, input_dropout=0.0, train_batch_size=8, max_grad_norm=1.0,
                 num_train_epochs=1, checkpointing_steps=20),
}

MODEL_KEYS = ("flow_type", "inverse", "cartesian_base", "hidden_size", "num_layers", "num_flow_steps",
              "num_mixtures", "context_size", "context_layers", "input_dropout")


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train an argmax flow on text (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small_coupling",
                   help="Hyperparameter set: text8_ar / text8_coupling / enwik8_ar / enwik8_coupling (the paper), "
                        "small_ar / small_coupling (2-core CPU), tiny (tests). Flags left unset take the preset's value.")
    add_text_data_arguments(p)
    model = p.add_argument_group("model")
    model.add_argument("--flow_type", choices=FLOW_TYPES, default=None)
    model.add_argument("--inverse", choices=INVERSES, default=None,
                       help="q(v | x): the argmax inverses, or the dequantization baselines of the paper's Table 2.")
    model.add_argument("--cartesian_base", type=int, default=None,
                       help="Encode each class as digits in this base (2: binary, one value per bit); 0: one digit.")
    model.add_argument("--hidden_size", type=int, default=None)
    model.add_argument("--num_layers", type=int, default=None)
    model.add_argument("--num_flow_steps", type=int, default=None)
    model.add_argument("--num_mixtures", type=int, default=None)
    model.add_argument("--context_size", type=int, default=None)
    model.add_argument("--context_layers", type=int, default=None)
    model.add_argument("--input_dropout", type=float, default=None)
    add_training_arguments(p, default_output_dir="argmax-flow-model", units="sequences")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (`sys.argv[1:]` by default) and fill the unset ones from the preset."""
    return parse_script_args(build_arg_parser(), "train_argmax_flow.py", argv, resolve_preset)


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    apply_preset(args, PRESETS[args.preset])
    if args.cartesian_base == 0:
        args.cartesian_base = None
    return resolve_text_data_arguments(args)


def build_model(args: argparse.Namespace, vocab_size: int) -> ArgmaxFlowModel:
    config = ArgmaxFlowConfig(vocab_size=vocab_size, seq_len=args.seq_len,
                              **{key: getattr(args, key) for key in MODEL_KEYS})
    return ArgmaxFlowModel(config)


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """
    Train with `args` (from [`parse_args`]) and, on the main process, write the model and its vocabulary with
    `save_pretrained` to `args.output_dir`, the model card `README.md` and `train_results.json`; with
    `--push_to_hub`, upload that folder (see [`train_flow`]).

    Returns the results dict (on every process): global_step, train_time_s, the training bound (bpc, mean of the
    last 10% of steps), validation_bpc (ELBO), history.
    """
    args = resolve_preset(args)
    config = training_config(args, "argmax_flow")
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        data, vocabulary = load_data(args)
    set_seed(args.seed)
    model = build_model(args, len(vocabulary))
    return train_flow(args, config, accelerator, data, model, unit="character", write_model_card=write_model_card,
                      decode_samples=vocabulary.batch_decode, save_with_model=[vocabulary])


def model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]):
    """A `huggingface_hub.ModelCard` filled from `model_cards/argmax_flow.md`, with the validation ELBO in its
    `model-index` (`hf-multinomial bpc` adds held-out results, e.g. the IWBO, to the saved card)."""
    type_, name = dataset_id(args)
    results = []
    if stats.get("validation_bpc") is not None:
        results.append(bits_eval_result(
            stats["validation_bpc"], "bpc", flow_bound(1), dataset_type=type_, dataset_name=name,
            dataset_split="validation", num_examples=stats.get("num_validation_examples"),
        ))
    return training_model_card(
        "argmax_flow", args, stats,
        hyperparameter_keys=("preset", "seq_len", *MODEL_KEYS, "train_batch_size", "gradient_accumulation_steps",
                             "optimizer", "learning_rate", "lr_decay_per_epoch", "lr_warmup_steps", "max_grad_norm",
                             "seed"),
        card_data_kwargs=dict(
            library_name="transformers",  # loaded with AutoModel (registered on import, or through auto_map)
            datasets={"text8": ["text8"], "enwik8": ["enwik8"]}.get(args.dataset),
            language=["en"] if args.vocabulary == "text8" else None,
            tags=["argmax-flow", "normalizing-flow", "text-generation", "character-level", "hf-multinomial"],
            pipeline_tag="text-generation",
        ),
        eval_results=results,
        remote_code=False,  # main holds auto_map and the modeling files already
        data_description=data_description(args),
        samples=list(samples),
        byte_level=args.vocabulary == "bytes",
        on_hub=bool(args.push_to_hub),
    )


def write_model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]) -> str:
    path = os.path.join(args.output_dir, "README.md")
    model_card(args, stats, samples).save(path)
    return path
