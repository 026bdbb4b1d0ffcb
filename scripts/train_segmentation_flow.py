#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train an argmax flow, a dequantization baseline or a VAE on segmentation maps (Cityscapes, or synthetic maps
without --data_root), then report the held-out ELBO and IWBO in bits per pixel.

    accelerate launch scripts/train_segmentation_flow.py --preset small --inverse thresholding --output_dir out
    accelerate launch scripts/train_segmentation_flow.py --preset cityscapes --inverse gumbel_thresholding \
        --data_root DATA --output_dir out --num_iwbo_samples 1000

See `--help` and `hf_multinomial.training.segmentation_flow`.
"""

from hf_multinomial.training.run import main
from hf_multinomial.training.segmentation_flow import TASK

if __name__ == "__main__":
    main(TASK)
