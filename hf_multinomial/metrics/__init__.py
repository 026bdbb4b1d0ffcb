import os

BITS_PER_DIM_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bits_per_dim.py")


def load_bits_per_dim(unit: str = "character"):
    """The bits-per-unit `evaluate` metric: unit is "character" (key `bpc`), "pixel" (`bpp`) or "dimension" (`bpd`)."""
    import evaluate

    return evaluate.load(BITS_PER_DIM_PATH, config_name=unit)
