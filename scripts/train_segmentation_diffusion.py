#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train multinomial diffusion on segmentation maps (Cityscapes, or synthetic maps without --data_root).

    accelerate launch scripts/train_segmentation_diffusion.py --preset small --output_dir out
    accelerate launch scripts/train_segmentation_diffusion.py --preset cityscapes --data_root DATA --output_dir out

See `--help` and `hf_multinomial.training.segmentation_diffusion`.
"""

from hf_multinomial.training.run import main
from hf_multinomial.training.segmentation_diffusion import TASK

if __name__ == "__main__":
    main(TASK)
