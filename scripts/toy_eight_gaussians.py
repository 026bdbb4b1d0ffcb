#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The quantized eight-Gaussians toy (the Argmax Flows paper's Appendix C and Figure 6): 2 dimensions x 91 classes.

    python scripts/toy_eight_gaussians.py --model argmax_flow --max_train_time_s 900
    python scripts/toy_eight_gaussians.py --model discrete_flow --max_train_time_s 120

The default argmax flow is small on purpose (it has to train in minutes on a shared CPU): each class is written in
binary (`--cartesian_base 2`, 7 bits per dimension), q(u | x) is a Gaussian from each position's embedding
(`--context_layers 0`) followed by thresholding, and p(v) is one autoregressive mixture-of-logistics step (hidden 64,
8 logistics) over the 2 x 7 values; Adam, learning rate 3e-3 halved every pass over the training samples.

Trains on a large pre-drawn set of samples (`--num_train_samples`, a fresh draw per seed; the model sees each point a
few times at most) with the shared training loop, then reports on 10,000 held-out samples the bound in nats per
sample (the argmax flow: ELBO and IWBO; the Discrete Flow: its exact log-likelihood), and, against the exact
probability mass table, the cross-entropy sum_x P(x) (-log Q(x)) (the argmax flow's Q(x) from exp(IWBO)). It saves
the model, its probability mass table `pmf.npy` and a plot of it next to the data's; the last output line is JSON
with `nll_nats` (the argmax flow: the negative IWBO; the Discrete Flow: the exact NLL).
"""

import argparse
import json
import math
import os
import time
from typing import Optional, Sequence

import numpy as np
import torch
from accelerate.utils import set_seed

from hf_multinomial.data.eight_gaussians import (
    EIGHT_GAUSSIANS_NUM_CLASSES,
    eight_gaussians_entropy,
    eight_gaussians_pmf,
    sample_eight_gaussians,
)
from hf_multinomial.flows.discrete_flow import DiscreteFlow
from hf_multinomial.evaluation import flow_negative_log_likelihood
from hf_multinomial.training.trainer import TrainingConfig, train_loop

K = EIGHT_GAUSSIANS_NUM_CLASSES


def pmf_image(pmf: torch.Tensor, vmax: Optional[float] = None, scale: int = 4):
    """A probability mass table (91, 91) as a PIL RGB heat map, white (0) to dark blue (>= `vmax`).

    Args:
        pmf: `pmf[i, j]` = P(x_1 = i, x_2 = j); x_1 runs left to right, x_2 bottom to top.
        vmax: the mass shown darkest (default: the table's maximum); larger masses saturate.
        scale: pixels per cell.
    """
    from PIL import Image

    pmf = torch.as_tensor(pmf, dtype=torch.float64).cpu()
    if pmf.dim() != 2:
        raise ValueError(f"pmf must be a 2-D table, got shape {tuple(pmf.shape)}")
    vmax = float(pmf.max()) if vmax is None else vmax
    t = (pmf / max(vmax, 1e-300)).clamp(0.0, 1.0).T.flip(0).numpy()[..., None]  # rows: x_2 from top (90) down
    white, blue = np.array([255.0, 255.0, 255.0]), np.array([8.0, 48.0, 107.0])
    rgb = (white + (blue - white) * t).round().astype(np.uint8)
    return Image.fromarray(rgb, mode="RGB").resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)


def save_pmf_figure(
    path: str, pmfs: Sequence[torch.Tensor], titles: Sequence[str], vmax: Optional[float] = None, scale: int = 4
) -> None:
    """Save heat maps of several probability mass tables side by side, each with its title above, to `path` (PNG).

    All panels share the colour scale `vmax` (default: the first table's maximum, i.e. the data's).
    """
    from PIL import Image, ImageDraw

    if len(pmfs) != len(titles):
        raise ValueError(f"got {len(pmfs)} tables but {len(titles)} titles")
    vmax = float(torch.as_tensor(pmfs[0]).max()) if vmax is None else vmax
    panels = [pmf_image(p, vmax=vmax, scale=scale) for p in pmfs]
    pad, title_height = 8, 20
    width = sum(p.width for p in panels) + pad * (len(panels) + 1)
    height = max(p.height for p in panels) + title_height + 2 * pad
    figure = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(figure)
    x = pad
    for panel, title in zip(panels, titles):
        draw.text((x, pad // 2), title, fill="black")
        top = pad + title_height
        figure.paste(panel, (x, top))
        draw.rectangle([x - 1, top - 1, x + panel.width, top + panel.height], outline="gray")
        x += panel.width + pad
    figure.save(path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["argmax_flow", "discrete_flow"], default="argmax_flow")
    p.add_argument("--output_dir", default=None, help="Default: toy-eight-gaussians-MODEL.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_threads", type=int, default=None, help="torch intra-op threads (default: torch's).")

    train = p.add_argument_group("training")
    train.add_argument("--max_train_time_s", type=float, default=900.0)
    train.add_argument("--max_train_steps", type=int, default=None)
    train.add_argument("--num_train_samples", type=int, default=2_000_000)
    train.add_argument("--train_batch_size", type=int, default=None, help="Default: 256 (argmax), 128 (discrete).")
    train.add_argument("--learning_rate", type=float, default=None, help="Default: 3e-3 (argmax), 1e-2 (discrete).")
    train.add_argument("--lr_decay_per_epoch", type=float, default=None,
                       help="Per pass over the training samples. Default: 0.5 (argmax), 1 (discrete).")
    train.add_argument("--max_grad_norm", type=float, default=None, help="Default: 1.0 (argmax), none (discrete).")

    flow = p.add_argument_group("argmax flow (ArgmaxFlowConfig)")
    flow.add_argument("--flow_type", default="autoregressive")
    flow.add_argument("--inverse", default="thresholding")
    flow.add_argument("--cartesian_base", type=int, default=2, help="0: none (one digit in base 91, width 91).")
    flow.add_argument("--hidden_size", type=int, default=64)
    flow.add_argument("--num_layers", type=int, default=1)
    flow.add_argument("--num_flow_steps", type=int, default=1)
    flow.add_argument("--num_mixtures", type=int, default=8)
    flow.add_argument("--context_size", type=int, default=64)
    flow.add_argument("--context_layers", type=int, default=0, help="0: q(u | x) from each position's embedding.")

    disc = p.add_argument_group("discrete flow")
    disc.add_argument("--temperature", type=float, default=0.1, help="Straight-through softmax temperature.")

    ev = p.add_argument_group("evaluation")
    ev.add_argument("--num_eval_samples", type=int, default=10_000)
    ev.add_argument("--iwbo_samples", type=int, default=100, help="k of the held-out IWBO (argmax flow).")
    ev.add_argument("--pmf_samples", type=int, default=100, help="k of the IWBO per grid cell for the pmf plot.")
    ev.add_argument("--eval_batch_size", type=int, default=20_000, help="Rows (examples x k) per forward pass.")
    ev.add_argument("--plot_path", default=None, help="Default: OUTPUT_DIR/eight_gaussians_MODEL.png.")
    ev.add_argument("--extra_panel", action="append", default=[], metavar="TITLE=PMF.npy",
                    help="Another run's pmf.npy to draw beside this one (repeatable).")
    args = p.parse_args(argv)
    is_argmax = args.model == "argmax_flow"
    if args.output_dir is None:
        args.output_dir = f"toy-eight-gaussians-{args.model.replace('_', '-')}"
    if args.train_batch_size is None:
        args.train_batch_size = 256 if is_argmax else 128
    if args.learning_rate is None:
        args.learning_rate = 3e-3 if is_argmax else 1e-2
    if args.lr_decay_per_epoch is None:
        args.lr_decay_per_epoch = 0.5 if is_argmax else 1.0
    if args.max_grad_norm is None:
        args.max_grad_norm = 1.0 if is_argmax else 0.0
    return args


class PointSet:
    """Pre-drawn points, read a whole batch at a time (`__getitems__`) instead of one row per call."""

    def __init__(self, ids: torch.Tensor):
        self.ids = ids

    def __len__(self):
        return self.ids.shape[0]

    def __getitem__(self, index):
        return {"input_ids": self.ids[index]}

    def __getitems__(self, indices):
        return {"input_ids": self.ids[torch.as_tensor(indices)]}


def _batch_as_is(batch):
    return batch


class DiscreteFlowObjective:
    """-log P(x) in nats per dimension (the Discrete Flow's gradient is the straight-through one); it draws nothing,
    so it has no generator to set up or checkpoint."""

    def setup(self, accelerator):
        pass

    def __call__(self, model, batch, accelerator):
        loss = model(batch["input_ids"]).mean() / batch["input_ids"].shape[1]
        return loss, {"loss": loss.detach()}

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def build_model(args):
    if args.model == "discrete_flow":
        return DiscreteFlow(K, seq_len=2, temperature=args.temperature)
    from hf_multinomial.flows.configuration_argmax_flow import ArgmaxFlowConfig
    from hf_multinomial.flows.modeling_argmax_flow import ArgmaxFlowModel

    config = ArgmaxFlowConfig(
        num_classes=K, seq_len=2, flow_type=args.flow_type, inverse=args.inverse,
        cartesian_base=args.cartesian_base or None, hidden_size=args.hidden_size, num_layers=args.num_layers,
        num_flow_steps=args.num_flow_steps, num_mixtures=args.num_mixtures, context_size=args.context_size,
        context_layers=args.context_layers,
    )
    return ArgmaxFlowModel(config)


def iwbo(model, ids: torch.Tensor, k: int, rows_per_pass: int, generator: torch.Generator) -> torch.Tensor:
    """The IWBO_k of each row of `ids` in nats, float64 (B,), at most `rows_per_pass` examples x k per pass."""
    return -flow_negative_log_likelihood(model, ids, batch_size=max(1, rows_per_pass // k), num_samples=k,
                                         generator=generator)


def evaluate(model, args, held_out: torch.Tensor) -> dict:
    """Held-out bounds and the model's probability mass table (91, 91) against the exact one."""
    model.eval()
    exact = eight_gaussians_pmf()
    grid = torch.cartesian_prod(torch.arange(K), torch.arange(K))  # row i * K + j is the point (i, j)
    generator = torch.Generator().manual_seed(args.seed + 2)
    if args.model == "discrete_flow":
        with torch.no_grad():
            nll = -model.log_prob(held_out).double()
            log_q = model.log_prob(grid).double().view(K, K)
        figures = {"nll_nats": nll.mean().item(), "nll_stderr": (nll.std() / math.sqrt(len(nll))).item()}
    else:
        elbo = iwbo(model, held_out, 1, args.eval_batch_size, generator)
        bound = iwbo(model, held_out, args.iwbo_samples, args.eval_batch_size, generator)
        log_q = iwbo(model, grid, args.pmf_samples, args.eval_batch_size, generator).view(K, K)
        figures = {
            "nll_nats": -bound.mean().item(),
            "nll_stderr": (bound.std() / math.sqrt(len(bound))).item(),
            "elbo_nats": -elbo.mean().item(),
            "iwbo_samples": args.iwbo_samples,
        }
    pmf = log_q.exp()
    figures.update({
        # the same held-out points under the exact pmf: the figure nll_nats would be for a perfect model
        "held_out_exact_nll_nats": float(-exact[held_out[:, 0], held_out[:, 1]].log().mean()),
        # sum_x P(x) (-log Q(x)): the held-out figure without its sampling noise (Q from exp(IWBO_pmf_samples))
        "cross_entropy_exact_nats": float(-(exact * log_q).sum()),
        "model_pmf_total_mass": float(pmf.sum()),
        "total_variation": float(0.5 * (pmf / pmf.sum() - exact).abs().sum()),
    })
    return figures, pmf


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    os.makedirs(args.output_dir, exist_ok=True)
    set_seed(args.seed)
    train_ids = sample_eight_gaussians(args.num_train_samples, torch.Generator().manual_seed(args.seed))
    held_out = sample_eight_gaussians(args.num_eval_samples, torch.Generator().manual_seed(args.seed + 1))
    model = build_model(args)

    objective = DiscreteFlowObjective()
    if args.model == "argmax_flow":
        from hf_multinomial.training.flows import FlowObjective

        objective = FlowObjective(seed=args.seed, bits_name="bits")
    config = TrainingConfig(
        output_dir=args.output_dir, seed=args.seed, train_batch_size=args.train_batch_size,
        learning_rate=args.learning_rate, lr_decay_per_epoch=args.lr_decay_per_epoch,
        max_train_steps=args.max_train_steps, num_train_epochs=1000, max_train_time_s=args.max_train_time_s,
        max_grad_norm=args.max_grad_norm or None, checkpointing_steps=None, report_to=None,
        disable_progress_bar=True,
    )
    result = train_loop(model, PointSet(train_ids), objective, config, collate_fn=_batch_as_is)
    model = result.model
    tail = result.history[-max(1, len(result.history) // 10):]

    start = time.monotonic()
    figures, pmf = evaluate(model, args, held_out)
    entropy = eight_gaussians_entropy()
    np.save(os.path.join(args.output_dir, "pmf.npy"), pmf.numpy())
    if args.model == "argmax_flow":
        model.save_pretrained(args.output_dir)
    else:
        torch.save(model.state_dict(), os.path.join(args.output_dir, "discrete_flow.pt"))
    plot_path = args.plot_path or os.path.join(args.output_dir, f"eight_gaussians_{args.model}.png")
    name = "Argmax Flow" if args.model == "argmax_flow" else "Discrete Flow"
    pmfs = [eight_gaussians_pmf(), pmf]
    titles = [f"Data: entropy {entropy:.2f} nats", f"{name}: {figures['nll_nats']:.2f} nats"]
    for panel in args.extra_panel:
        title, path = panel.split("=", 1)
        pmfs.append(torch.from_numpy(np.load(path)))
        titles.append(title)
    save_pmf_figure(plot_path, pmfs, titles)

    summary = {
        "model": args.model,
        **figures,
        "entropy_nats": entropy,
        "gap_nats": figures["nll_nats"] - entropy,
        "train_loss_nats": 2 * sum(h["loss"] for h in tail) / len(tail),  # per sample (2 dimensions)
        "train_time_s": round(result.train_time_s, 1),
        "eval_time_s": round(time.monotonic() - start, 1),
        "steps": result.global_step,
        "train_batch_size": args.train_batch_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "num_threads": torch.get_num_threads(),
        "plot": plot_path,
        "args": vars(args),
    }
    result.accelerator.end_training()
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
