#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train an argmax flow, a dequantization baseline or a VAE on segmentation maps (Cityscapes, or synthetic maps
without --data_root), then report the held-out ELBO and IWBO in bits per pixel.

    accelerate launch scripts/train_segmentation_flow.py --preset small --model thresholding --output_dir out
    accelerate launch scripts/train_segmentation_flow.py --preset cityscapes --model gumbel_thresholding \
        --data_root DATA --output_dir out --num_iwbo_samples 1000

See `--help` and `hf_multinomial.training.segmentation_flow`.
"""

from hf_multinomial.training.diffusion import print_results
from hf_multinomial.training.segmentation_flow import parse_args, train

if __name__ == "__main__":
    print_results(train(parse_args()))
