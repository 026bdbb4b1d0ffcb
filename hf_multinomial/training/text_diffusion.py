# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Multinomial text diffusion training (Hoogeboom et al., 2021, Section 6.1): presets, model / scheduler / data
construction, the diffusion objective, and the final pipeline and model card.

The loop itself is [`hf_multinomial.training.trainer.train_loop`]; all diffusion math is the scheduler's.

    from hf_multinomial.training.text_diffusion import parse_args, train
    result = train(parse_args(["--preset", "small", "--output_dir", "out", "--max_train_time_s", "180"]))
"""

import argparse
import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from accelerate.utils import set_seed

from ..data import CharVocabulary, load_enwik8, load_text8, load_text_file
from ..data.text import bundled_text8_path
from ..models import MultinomialTransformer
from ..schedulers import ImportanceTimestepSampler, MultinomialScheduler
from .trainer import TrainingConfig, make_accelerator, train_loop

LN2 = math.log(2.0)

# The paper's text models (Tables 6 and 7) and two small ones. Every key can be overridden by a flag of the same name.
PRESETS: Dict[str, Dict[str, Any]] = {
    "text8": dict(
        vocabulary="text8", seq_len=256, num_train_timesteps=1000,
        num_layers=12, hidden_size=512, num_heads=16, num_local_heads=8, local_window=128, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned",
        train_batch_size=32, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=None,
        num_train_epochs=40, checkpointing_steps=5000,
    ),
    "enwik8": dict(
        vocabulary="bytes", seq_len=320, num_train_timesteps=4000,
        num_layers=12, hidden_size=512, num_heads=16, num_local_heads=8, local_window=128, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned",
        train_batch_size=32, learning_rate=1e-4, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=None,
        num_train_epochs=40, checkpointing_steps=5000,
    ),
    # Learns quickly on a 2-core CPU (the demo): a narrow, shallow model, a high learning rate with warm-up.
    "small": dict(
        vocabulary="text8", seq_len=256, num_train_timesteps=1000,
        num_layers=4, hidden_size=128, num_heads=4, num_local_heads=2, local_window=32, mlp_ratio=4.0,
        dropout=0.0, position_embedding="learned",
        train_batch_size=32, learning_rate=1e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=50, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=250,
    ),
    # For tests: seconds per hundred steps.
    "tiny": dict(
        vocabulary="text8", seq_len=32, num_train_timesteps=10,
        num_layers=1, hidden_size=32, num_heads=2, num_local_heads=1, local_window=8, mlp_ratio=2.0,
        dropout=0.0, position_embedding="learned",
        train_batch_size=8, learning_rate=3e-3, lr_decay_per_epoch=0.99, lr_warmup_steps=0, max_grad_norm=1.0,
        num_train_epochs=1, checkpointing_steps=20,
    ),
}

MODEL_KEYS = ("num_layers", "hidden_size", "num_heads", "num_local_heads", "local_window", "mlp_ratio", "dropout",
              "position_embedding")
MODEL_CARD_TEMPLATE = Path(__file__).resolve().parents[2] / "model_cards" / "text_diffusion.md"


# ---------------------------------------------------------------------------------------------- arguments


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train a multinomial diffusion model on text (run with `accelerate launch`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small",
                   help="Hyperparameter set: text8 / enwik8 (the paper), small (2-core CPU), tiny (tests). "
                        "Flags left unset take the preset's value.")
    data = p.add_argument_group("data (default: the bundled Wikipedia sample in text8 format)")
    data.add_argument("--dataset", choices=["text8", "enwik8"], default=None, help="A real dataset; needs --data_dir.")
    data.add_argument("--data_dir", default=None, help="Folder (or file) holding text8/text8.zip or enwik8/enwik8.zip.")
    data.add_argument("--text_file", default=None, help="Any text file, split 90/5/5 by position.")
    data.add_argument("--vocabulary", choices=["text8", "bytes"], default=None,
                      help="text8: space and a-z; bytes: the 256 byte values. Default from the preset/dataset.")
    data.add_argument("--cache_dir", default=None, help="Where prepared datasets are cached.")
    data.add_argument("--seq_len", type=int, default=None)
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = p.add_argument_group("model and diffusion")
    model.add_argument("--num_layers", type=int, default=None)
    model.add_argument("--hidden_size", type=int, default=None)
    model.add_argument("--num_heads", type=int, default=None)
    model.add_argument("--num_local_heads", type=int, default=None)
    model.add_argument("--local_window", type=int, default=None)
    model.add_argument("--mlp_ratio", type=float, default=None)
    model.add_argument("--dropout", type=float, default=None)
    model.add_argument("--position_embedding", choices=["learned", "sinusoidal"], default=None)
    model.add_argument("--num_train_timesteps", type=int, default=None, help="T (the paper: 1000 text8, 4000 enwik8).")

    train = p.add_argument_group("training")
    train.add_argument("--output_dir", default="text-diffusion-model")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--train_batch_size", type=int, default=None, help="Per process and micro-batch.")
    train.add_argument("--learning_rate", type=float, default=None)
    train.add_argument("--lr_decay_per_epoch", type=float, default=None)
    train.add_argument("--lr_warmup_steps", type=int, default=None)
    train.add_argument("--adam_weight_decay", type=float, default=0.0)
    train.add_argument("--max_train_steps", type=int, default=None, help="Optimizer steps; overrides epochs.")
    train.add_argument("--num_train_epochs", type=int, default=None)
    train.add_argument("--max_train_time_s", type=float, default=None, help="Wall-clock budget of the loop.")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument("--max_grad_norm", type=float, default=None, help="Clip gradients (0 or unset: preset).")
    train.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default="no")
    train.add_argument("--use_ema", action="store_true")
    train.add_argument("--ema_decay", type=float, default=0.9999)
    train.add_argument("--checkpointing_steps", type=int, default=None)
    train.add_argument("--checkpoints_total_limit", type=int, default=None)
    train.add_argument("--resume_from_checkpoint", default=None, help='"latest" or a checkpoint folder.')
    train.add_argument("--report_to", default="tensorboard", help='"tensorboard" or "none".')
    train.add_argument("--logging_steps", type=int, default=1)

    final = p.add_argument_group("after training")
    final.add_argument("--num_validation_sequences", type=int, default=64,
                       help="Validation sequences for the one-t bpc estimate written to the model card (0: skip).")
    final.add_argument("--num_card_samples", type=int, default=2, help="Samples printed in the model card (0: none).")
    final.add_argument("--card_inference_steps", type=int, default=100, help="Sampling steps for them (at most T).")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse flags (`sys.argv[1:]` by default) and fill the unset ones from the preset."""
    args = build_arg_parser().parse_args(argv)
    args.command_line = ["train_text_diffusion.py", *(sys.argv[1:] if argv is None else argv)]
    return resolve_preset(args)


def resolve_preset(args: argparse.Namespace) -> argparse.Namespace:
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.dataset:
        args.vocabulary = {"text8": "text8", "enwik8": "bytes"}[args.dataset]
    if args.dataset and not args.data_dir:
        raise ValueError(f"--dataset {args.dataset} needs --data_dir (nothing is downloaded)")
    if args.dataset and args.text_file:
        raise ValueError("Pass either --dataset/--data_dir or --text_file, not both")
    if args.max_grad_norm == 0:
        args.max_grad_norm = None
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


def training_config(args: argparse.Namespace) -> TrainingConfig:
    names = TrainingConfig.__dataclass_fields__
    config = TrainingConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    config.max_grad_norm = args.max_grad_norm
    config.tracker_project_name = "text_diffusion"
    return config


# ---------------------------------------------------------------------------------------------- the objective


class DiffusionObjective:
    """
    The multinomial diffusion training loss in nats per character: `mean_b(L_t / q(t) + prior KL) / characters`, an
    unbiased estimate of the negative ELBO, with t drawn by an [`ImportanceTimestepSampler`].

    Each process draws t and the noise from its own generator, seeded with `seed + process_index`; the sampler is fed
    the (t, L_t) of all processes (gathered), so every process holds the same history. Both are in `state_dict`.
    """

    def __init__(self, scheduler: MultinomialScheduler, seed: int = 0, sampler: Optional[ImportanceTimestepSampler] = None):
        self.scheduler = scheduler
        self.sampler = sampler or ImportanceTimestepSampler(scheduler.config.num_train_timesteps)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def setup(self, accelerator) -> None:
        self.generator = torch.Generator().manual_seed(self.seed + accelerator.process_index)

    def __call__(self, model, batch, accelerator):
        x_start = batch["input_ids"]
        batch_size = x_start.shape[0]
        chars = x_start[0].numel()
        t, pt = self.sampler.sample(batch_size, self.generator, device=x_start.device)
        x_t = self.scheduler.add_noise(x_start, t, self.generator)
        logits = model(x_t, t).sample
        loss_t = self.scheduler.compute_loss(logits.float(), x_start, x_t, t)
        prior = self.scheduler.prior_kl(x_start)
        loss = (loss_t / pt + prior).mean() / chars

        all_t, all_loss_t = accelerator.gather((t, loss_t.detach()))
        self.sampler.update(all_t, all_loss_t)
        nats = loss.detach()
        return loss, {"loss": nats, "bpc": nats / LN2}

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])


@torch.no_grad()
def validation_bpc_estimate(model, scheduler, dataset, num_sequences: int, seed: int = 0, batch_size: int = 32) -> float:
    """The scheduler's one-t unbiased negative-ELBO estimate on the first `num_sequences` rows, in bits per char."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    total, chars = 0.0, 0
    for first in range(0, min(num_sequences, len(dataset)), batch_size):
        x = dataset[first : min(first + batch_size, num_sequences)]["input_ids"].to(device)
        nll = scheduler.negative_elbo_estimate(lambda x_t, t: model(x_t, t).sample.float(), x, generator)
        total += float(nll.sum())
        chars += x.numel()
    return total / max(chars, 1) / LN2


# ---------------------------------------------------------------------------------------------- the run


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """
    Train with `args` (from [`parse_args`]) and, on the main process, write the pipeline (denoiser, scheduler,
    vocabulary) with `save_pretrained` to `args.output_dir`, its model card `README.md` and `train_results.json`.

    Returns the results dict (on every process): output_dir, global_step, train_time_s, final loss / bpc (mean of the
    last 10% of steps), validation_bpc_estimate, history (per-step logs of this run).
    """
    args = resolve_preset(args)
    config = training_config(args)
    accelerator = make_accelerator(config)
    with accelerator.main_process_first():
        data, vocabulary = load_data(args)
    set_seed(args.seed)  # identical initial weights on every process
    model = build_model(args, len(vocabulary))
    scheduler = MultinomialScheduler(num_classes=len(vocabulary), num_train_timesteps=args.num_train_timesteps)
    objective = DiffusionObjective(scheduler, seed=args.seed)

    result = train_loop(model, data["train"], objective, config, accelerator=accelerator)

    tail = result.history[-max(1, len(result.history) // 10):]
    stats: Dict[str, Any] = {
        "output_dir": args.output_dir,
        "global_step": result.global_step,
        "epochs": round(result.global_step / max(1, len(data["train"]) // (config.train_batch_size
                        * accelerator.num_processes * config.gradient_accumulation_steps)), 4),
        "train_time_s": round(result.train_time_s, 2),
        "stopped_early": result.stopped_early,
        "train_loss": sum(h["loss"] for h in tail) / len(tail) if tail else None,
        "train_bpc": sum(h["bpc"] for h in tail) / len(tail) if tail else None,
        "num_parameters": sum(p.numel() for p in result.model.parameters()),
        "validation_bpc_estimate": None,
        "history": result.history,
    }
    if accelerator.is_main_process:
        model = result.model.eval()
        if args.num_validation_sequences > 0 and len(data["validation"]):
            stats["validation_bpc_estimate"] = validation_bpc_estimate(
                model, scheduler, data["validation"], args.num_validation_sequences, seed=args.seed
            )
        from ..pipelines.pipeline_discrete_diffusion import DiscreteDiffusionPipeline

        pipeline = DiscreteDiffusionPipeline(denoiser=model, scheduler=scheduler, vocabulary=vocabulary)
        pipeline.save_pretrained(args.output_dir)
        samples = []
        if args.num_card_samples > 0:
            pipeline.set_progress_bar_config(disable=True)
            steps = min(args.card_inference_steps or args.num_train_timesteps, args.num_train_timesteps)
            samples = pipeline(batch_size=args.num_card_samples, num_inference_steps=steps,
                               generator=torch.Generator().manual_seed(args.seed)).samples
        with open(os.path.join(args.output_dir, "train_results.json"), "w") as f:
            json.dump({k: v for k, v in stats.items() if k != "history"}, f, indent=2)
        write_model_card(args, stats, samples)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return stats


# ---------------------------------------------------------------------------------------------- model card


def model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]):
    """A `huggingface_hub.ModelCard` filled from `model_cards/text_diffusion.md` (push it with `card.push_to_hub`)."""
    from huggingface_hub import ModelCard, ModelCardData

    datasets = {"text8": ["text8"], "enwik8": ["enwik8"]}.get(args.dataset)
    card_data = ModelCardData(
        library_name="hf-multinomial", license="apache-2.0", datasets=datasets,
        language=["en"] if args.vocabulary == "text8" else None,
        tags=["multinomial-diffusion", "discrete-diffusion", "text-generation", "character-level", "hf-multinomial"],
        pipeline_tag="text-generation",
    )
    hyperparameters = {
        key: getattr(args, key)
        for key in ("preset", "seq_len", "num_train_timesteps", *MODEL_KEYS, "train_batch_size",
                    "gradient_accumulation_steps", "learning_rate", "lr_decay_per_epoch", "lr_warmup_steps",
                    "max_grad_norm", "mixed_precision", "use_ema", "ema_decay", "seed")
    }
    return ModelCard.from_template(
        card_data,
        template_path=str(MODEL_CARD_TEMPLATE),
        data_description=data_description(args),
        command="accelerate launch " + " ".join(shlex.quote(a) for a in args.command_line)
        if getattr(args, "command_line", None) else None,
        hyperparameters=hyperparameters,
        stats={k: v for k, v in stats.items() if k != "history"},
        samples=list(samples),
        vocabulary_size=256 if args.vocabulary == "bytes" else 27,
    )


def write_model_card(args: argparse.Namespace, stats: Dict[str, Any], samples: List[str]) -> str:
    path = os.path.join(args.output_dir, "README.md")
    model_card(args, stats, samples).save(path)
    return path
