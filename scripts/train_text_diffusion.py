#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train a multinomial text diffusion model.

    accelerate launch scripts/train_text_diffusion.py --preset small --output_dir out
    accelerate launch scripts/train_text_diffusion.py --preset text8 --dataset text8 --data_dir DATA --output_dir out
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 scripts/train_text_diffusion.py ...

See `--help` and `hf_multinomial.training.text_diffusion`.
"""

from hf_multinomial.training.run import main
from hf_multinomial.training.text_diffusion import TASK

if __name__ == "__main__":
    main(TASK)
