"""The bits-per-unit `evaluate` metric and the constants every bound in bits shares."""

import math
import os

BITS_PER_DIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bits_per_dim.py")
LN2 = math.log(2.0)
# The key of a result in bits per unit. `bits_per_dim.py` keeps its own copy: an `evaluate` module is loaded on its
# own, from a path or the Hub, and cannot import this package.
UNIT_KEYS = {"character": "bpc", "pixel": "bpp", "dimension": "bpd"}


def load_bits_per_dim(unit: str = "character"):
    """The bits-per-unit `evaluate` metric: unit is "character" (key `bpc`), "pixel" (`bpp`) or "dimension" (`bpd`)."""
    import evaluate

    if unit not in UNIT_KEYS:
        raise ValueError(f"unit must be one of {sorted(UNIT_KEYS)}, got {unit!r}")
    return evaluate.load(BITS_PER_DIM_PATH, config_name=unit)
