#!/usr/bin/env python
# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Train an argmax flow on text.

    accelerate launch scripts/train_argmax_flow.py --preset small_coupling --output_dir out
    accelerate launch scripts/train_argmax_flow.py --preset text8_ar --dataset text8 --data_dir DATA --output_dir out

See `--help` and `hf_multinomial.training.argmax_flow`.
"""

from hf_multinomial.training.argmax_flow import TASK
from hf_multinomial.training.run import main

if __name__ == "__main__":
    main(TASK)
