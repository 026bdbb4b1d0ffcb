# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The demos: train a small diffusion model on the CPU (bundled Wikipedia text, or synthetic segmentation maps), reload
it with `from_pretrained`, sample, and evaluate the full-T bound in bits per character / pixel."""

import time
from typing import Optional

import torch

from ..data import CITYSCAPES_CATEGORY_COLORS, load_bundled_text8, synthetic_segmentation_dataset
from ..evaluation import bits_per_unit, diffusion_negative_elbo
from ..pipelines import DiscreteDiffusionPipeline, make_grid
from . import segmentation_diffusion, text_diffusion

# Wall-clock seconds of training; with data preparation, the full-T evaluation and sampling the demo stays well
# inside 10 minutes on 2 CPU cores.
DEMO_TRAIN_SECONDS = 390
DEMO_PRESET = "small"
DEMO_VALIDATION_SEQUENCES = 64


def _full_elbo_bits(pipe, input_ids, unit: str, seed: int):
    """The bits-per-unit metric of the full-T negative ELBO of `input_ids`, and T."""
    generator = torch.Generator().manual_seed(seed)
    nll = diffusion_negative_elbo(pipe.denoiser, pipe.scheduler, input_ids, generator=generator)
    return bits_per_unit(nll, input_ids[0].numel(), unit), pipe.scheduler.config.num_train_timesteps


def run_demo(output_dir: str = "hf-multinomial-demo", time_budget_s: Optional[float] = None, seed: int = 0) -> dict:
    """
    Train on the bundled text (the `small` preset, for `time_budget_s` seconds), save the pipeline to `output_dir`,
    reload it with `from_pretrained`, print four samples and return the full-T validation bits per character.
    """
    start = time.time()
    budget = DEMO_TRAIN_SECONDS if time_budget_s is None else time_budget_s
    args = text_diffusion.parse_args(
        ["--preset", DEMO_PRESET, "--output_dir", output_dir, "--seed", str(seed), "--max_train_time_s", str(budget),
         "--max_train_steps", "1000000", "--checkpointing_steps", "1000000"]
    )
    stats = text_diffusion.train(args)

    pipe = DiscreteDiffusionPipeline.from_pretrained(output_dir)
    generator = torch.Generator().manual_seed(seed)
    samples = pipe(batch_size=4, generator=generator).samples
    print("\nSamples from the reloaded pipeline:")
    for text in samples:
        print(f"  {text!r}")

    validation = load_bundled_text8(seq_len=pipe.denoiser.config.max_seq_len)["validation"].with_format("torch")
    input_ids = validation[:DEMO_VALIDATION_SEQUENCES]["input_ids"]
    result, T = _full_elbo_bits(pipe, input_ids, "character", seed)
    print(f"\nValidation: {result['bpc']:.3f} bits per character (full ELBO, T={T}, {input_ids.shape[0]} sequences "
          f"of {input_ids.shape[1]} held-out characters); a unigram model gives about 4.1.")
    return {
        "output_dir": output_dir,
        "train_steps": stats["global_step"],
        "train_time_s": stats["train_time_s"],
        "validation_bpc": result["bpc"],
        "validation_characters": result["num_units"],
        "num_timesteps": T,
        "samples": samples,
        "total_time_s": round(time.time() - start, 1),
    }


SEGMENTATION_DEMO_TRAIN_SECONDS = 240
SEGMENTATION_DEMO_TEST_MAPS = 48


def run_segmentation_demo(
    output_dir: str = "hf-multinomial-demo-segmentation", time_budget_s: Optional[float] = None, seed: int = 0
) -> dict:
    """
    Train the `small` segmentation preset on synthetic street-scene maps for `time_budget_s` seconds, save the
    pipeline, reload it, write `samples.png` (16 samples) and `chain.png` (the sampling chain of 4 samples), and return
    the full-T bits per pixel on held-out synthetic maps.
    """
    start = time.time()
    budget = SEGMENTATION_DEMO_TRAIN_SECONDS if time_budget_s is None else time_budget_s
    args = segmentation_diffusion.parse_args(
        ["--preset", "small", "--output_dir", output_dir, "--seed", str(seed), "--max_train_time_s", str(budget),
         "--max_train_steps", "1000000", "--checkpointing_steps", "1000000"]
    )
    stats = segmentation_diffusion.train(args)

    pipe = DiscreteDiffusionPipeline.from_pretrained(output_dir)
    samples = pipe(batch_size=16, output_type="np", generator=torch.Generator().manual_seed(seed)).samples
    make_grid(samples, palette=CITYSCAPES_CATEGORY_COLORS, num_columns=4, scale=3).save(f"{output_dir}/samples.png")
    chain = pipe(batch_size=4, num_inference_steps=10, output_type="np", return_chain=True,
                 generator=torch.Generator().manual_seed(seed)).chain
    make_grid(chain, palette=CITYSCAPES_CATEGORY_COLORS, scale=2).save(f"{output_dir}/chain.png")

    height, width = pipe.denoiser.config.sample_size
    test = synthetic_segmentation_dataset(height=height, width=width, seed=seed)["test"].with_format("torch")
    input_ids = test[:SEGMENTATION_DEMO_TEST_MAPS]["input_ids"]
    result, T = _full_elbo_bits(pipe, input_ids, "pixel", seed)
    print(f"\nHeld-out synthetic maps: {result['bpp']:.3f} bits per pixel (full ELBO, T={T}, {input_ids.shape[0]} maps); "
          f"uniform over 8 classes is 3 bits. Samples: {output_dir}/samples.png, chain: {output_dir}/chain.png")
    return {
        "output_dir": output_dir,
        "train_steps": stats["global_step"],
        "train_time_s": stats["train_time_s"],
        "test_bpp": result["bpp"],
        "test_pixels": result["num_units"],
        "num_timesteps": T,
        "samples_png": f"{output_dir}/samples.png",
        "total_time_s": round(time.time() - start, 1),
    }
