# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""The one check of a count argument, shared by the data, evaluation and training layers. (The modules of `flows/`
import only their siblings, for trust_remote_code, and keep their own copy in `configuration_argmax_flow.py`.)"""


def check_count(name: str, value, minimum: int = 1, optional: bool = False) -> None:
    """A ValueError naming `name` and `value` unless `value` is an integer >= `minimum` (not a bool, not a float
    such as 2.0); with `optional`, None passes too."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
