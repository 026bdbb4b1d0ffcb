#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train multinomial diffusion on segmentation maps (Cityscapes, or synthetic maps without --data_root).

    accelerate launch scripts/train_segmentation_diffusion.py --preset small --output_dir out
    accelerate launch scripts/train_segmentation_diffusion.py --preset cityscapes --data_root DATA --output_dir out

See `--help` and `hf_multinomial.training.segmentation_diffusion`.
"""

from hf_multinomial.training.diffusion import print_results
from hf_multinomial.training.segmentation_diffusion import parse_args, train

if __name__ == "__main__":
    print_results(train(parse_args()))
