# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Cartesian encodings: a class id in [0, K) written as d_m digits in base M (the paper's Table 9)."""

from typing import Optional

import torch


class CartesianEncoding:
    """
    Writes class ids in [0, num_classes) as `digits` base-`base` digits, most significant digit first.

    `digits` is the smallest d_m with base ** d_m >= num_classes, so with base ** d_m > num_classes some codes are
    unused: `decode` maps them to ids >= num_classes. Each digit takes `width_per_digit` continuous values in an
    argmax flow: one value whose sign is the digit for base 2, otherwise one value per digit value (argmax).

    Args:
        num_classes (`int`): K, the number of classes (at least 2).
        base (`int`, *optional*): M, the base of the digits (at least 2). None means base = K and one digit.

    Attributes:
        num_classes, base (M), digits (d_m), width_per_digit (1 if M == 2 else M), width (digits * width_per_digit).
    """

    def __init__(self, num_classes: int, base: Optional[int] = None):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if base is None:
            base = num_classes
        if isinstance(base, bool) or not isinstance(base, int) or base < 2:
            raise ValueError(f"base must be None or an int >= 2, got {base!r}")
        digits = 1
        while base**digits < num_classes:
            digits += 1
        self.num_classes = num_classes
        self.base = base
        self.digits = digits
        self.width_per_digit = 1 if base == 2 else base
        self.width = digits * self.width_per_digit

    def __repr__(self):
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}, base={self.base}, digits={self.digits}, "
            f"width={self.width})"
        )

    def _place_values(self, device) -> torch.Tensor:
        return self.base ** torch.arange(self.digits - 1, -1, -1, device=device, dtype=torch.int64)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """Class ids of any shape (...) -> digits (..., digits), int64 in [0, base), most significant first.

        Raises a ValueError naming the first offending id if any id is < 0 or >= num_classes.
        """
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"ids must be an integer tensor, got dtype {ids.dtype}")
        ids = ids.long()
        bad = (ids < 0) | (ids >= self.num_classes)
        if bad.any():
            value = ids[bad][0].item()
            raise ValueError(f"class id {value} is outside [0, {self.num_classes}) for num_classes={self.num_classes}")
        return torch.div(ids.unsqueeze(-1), self._place_values(ids.device), rounding_mode="floor") % self.base

    def decode(self, digits: torch.Tensor) -> torch.Tensor:
        """Digits (..., digits) in [0, base) -> ids (...), int64. Unused codes give ids >= num_classes."""
        if digits.is_floating_point() or digits.is_complex() or digits.dtype == torch.bool:
            raise ValueError(f"digits must be an integer tensor, got dtype {digits.dtype}")
        if digits.dim() == 0 or digits.shape[-1] != self.digits:
            raise ValueError(f"digits must have shape (..., {self.digits}), got {tuple(digits.shape)}")
        digits = digits.long()
        bad = (digits < 0) | (digits >= self.base)
        if bad.any():
            raise ValueError(f"digit {digits[bad][0].item()} is outside [0, {self.base}) for base={self.base}")
        return (digits * self._place_values(digits.device)).sum(-1)
