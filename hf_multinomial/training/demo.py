# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The demos: train a small diffusion model on the CPU (bundled Wikipedia text, or synthetic segmentation maps) for a
time budget, reload it with `from_pretrained`, sample, and evaluate the full-T bound in bits per character / pixel."""

import json
import os
import time
from typing import Optional

import torch

from ..data import CITYSCAPES_CATEGORY_COLORS, load_bundled_text8, synthetic_segmentation_dataset
from ..evaluation import bits_per_unit, diffusion_negative_elbo
from ..metrics import UNIT_KEYS
from ..pipelines import DiscreteDiffusionPipeline, make_grid
from . import segmentation_diffusion, text_diffusion
from .run import parse_arguments, train
from .trainer import SAVED_MODEL_FILES

DEMO_PRESET = "demo"  # the `small` model trained for the preset's time budget alone
DEMO_VALIDATION_SEQUENCES = 64
SEGMENTATION_DEMO_TEST_MAPS = 48


def _demo_arguments(task, output_dir: str, time_budget_s: Optional[float], seed: int):
    """The demo's run: the task's `demo` preset in `output_dir`. An earlier demo's output there is replaced (and
    the user told); anything else in the folder stops the demo with the training layer's error."""
    argv = ["--preset", DEMO_PRESET, "--output_dir", output_dir, "--seed", str(seed)]
    if time_budget_s is not None:
        argv += ["--max_train_time_s", str(time_budget_s)]
    if _holds_earlier_demo(output_dir):
        print(f"Replacing the earlier demo output in {output_dir}.")
        argv.append("--overwrite_output_dir")
    elif any(os.path.exists(os.path.join(output_dir, name)) for name in SAVED_MODEL_FILES):
        raise FileExistsError(f"{output_dir!r} holds a model that is not an earlier demo's; the demo does not "
                              "replace it: choose another --output-dir")
    return parse_arguments(task, argv)


def _holds_earlier_demo(output_dir: str) -> bool:
    results = os.path.join(output_dir, "train_results.json")
    if not os.path.isfile(results):
        return False
    try:
        with open(results) as f:
            return json.load(f).get("preset") == DEMO_PRESET
    except (OSError, ValueError):
        return False


def _evaluate_full_elbo(pipe, input_ids, unit: str, split: str, seed: int, results: dict, start: float, what: str,
                        baseline: str, **extra) -> dict:
    """Print the full-T negative ELBO of `input_ids` (held-out rows of `split`) in bits per `unit` (`what`: the
    data, `baseline`: what to compare with) and return the demo's figures."""
    generator = torch.Generator().manual_seed(seed)
    nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, input_ids, generator=generator)
    metric = bits_per_unit(nll, input_ids[0].numel(), unit)
    key = UNIT_KEYS[unit]
    T = pipe.scheduler.config.num_train_timesteps
    print(f"\n{what}: {metric[key]:.3f} bits per {unit} (full ELBO, T={T}); {baseline}")
    return {
        "output_dir": results["output_dir"],
        "train_steps": results["global_step"],
        "train_time_s": results["train_time_s"],
        f"{split}_{key}": metric[key],
        f"{split}_{unit}s": metric["num_units"],
        "num_timesteps": T,
        **extra,
        "total_time_s": round(time.time() - start, 1),
    }


def run_demo(output_dir: str = "hf-multinomial-demo", time_budget_s: Optional[float] = None, seed: int = 0) -> dict:
    """
    Train on the bundled text (the `demo` preset: the small model for 390 s, or `time_budget_s`), save the pipeline
    to `output_dir`, reload it with `from_pretrained`, print four samples and return the full-T validation bits per
    character.
    """
    start = time.time()
    results = train(text_diffusion.TASK, _demo_arguments(text_diffusion.TASK, output_dir, time_budget_s, seed))

    pipe = DiscreteDiffusionPipeline.from_pretrained(output_dir)
    samples = pipe(batch_size=4, generator=torch.Generator().manual_seed(seed)).samples
    print("\nSamples from the reloaded pipeline:")
    for text in samples:
        print(f"  {text!r}")

    validation = load_bundled_text8(seq_len=pipe.denoiser.config.max_seq_len)["validation"].with_format("torch")
    input_ids = validation[:DEMO_VALIDATION_SEQUENCES]["input_ids"]
    return _evaluate_full_elbo(
        pipe, input_ids, "character", "validation", seed, results, start,
        what=f"Validation, {input_ids.shape[0]} sequences of {input_ids.shape[1]} held-out characters",
        baseline="a unigram model gives about 4.1.", samples=samples)


def run_segmentation_demo(
    output_dir: str = "hf-multinomial-demo-segmentation", time_budget_s: Optional[float] = None, seed: int = 0
) -> dict:
    """
    Train the segmentation `demo` preset (the small U-Net for 240 s, or `time_budget_s`) on synthetic street-scene
    maps, save the pipeline, reload it, write `samples.png` (16 samples) and `chain.png` (the sampling chain of 4
    samples), and return the full-T bits per pixel on held-out synthetic maps.
    """
    start = time.time()
    task = segmentation_diffusion.TASK
    results = train(task, _demo_arguments(task, output_dir, time_budget_s, seed))

    pipe = DiscreteDiffusionPipeline.from_pretrained(output_dir)
    samples = pipe(batch_size=16, output_type="np", generator=torch.Generator().manual_seed(seed)).samples
    make_grid(samples, palette=CITYSCAPES_CATEGORY_COLORS, num_columns=4, scale=3).save(f"{output_dir}/samples.png")
    chain = pipe(batch_size=4, num_inference_steps=10, output_type="np", return_chain=True,
                 generator=torch.Generator().manual_seed(seed)).chain
    make_grid(chain, palette=CITYSCAPES_CATEGORY_COLORS, scale=2).save(f"{output_dir}/chain.png")

    height, width = pipe.denoiser.config.sample_size
    test = synthetic_segmentation_dataset(height=height, width=width, seed=seed)["test"].with_format("torch")
    input_ids = test[:SEGMENTATION_DEMO_TEST_MAPS]["input_ids"]
    return _evaluate_full_elbo(
        pipe, input_ids, "pixel", "test", seed, results, start, what=f"Held-out synthetic maps, {input_ids.shape[0]} maps",
        baseline=f"uniform over 8 classes is 3 bits. Samples: {output_dir}/samples.png, chain: {output_dir}/chain.png",
        samples_png=f"{output_dir}/samples.png")
