# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Colour-coding of categorical maps and PNG grids of batches or sampling chains."""

import colorsys
from typing import List, Optional, Sequence, Union

import numpy as np
import torch


def default_palette(num_classes: int) -> List[tuple]:
    """`num_classes` distinct RGB colours: class 0 black, the others evenly spaced in hue."""
    colours = [(0, 0, 0)]
    for k in range(1, num_classes):
        r, g, b = colorsys.hsv_to_rgb((k - 1) / max(num_classes - 1, 1), 0.75, 0.95)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours[:num_classes]


def colorize(maps: Union[np.ndarray, torch.Tensor], palette: Sequence[Sequence[int]]) -> np.ndarray:
    """Class-id maps `(..., H, W)` to RGB images `(..., H, W, 3)` of dtype uint8."""
    maps = maps.detach().cpu().numpy() if torch.is_tensor(maps) else np.asarray(maps)
    table = np.asarray(palette, dtype=np.uint8)
    if maps.size and (maps.min() < 0 or maps.max() >= len(table)):
        bad = int(maps.min()) if maps.min() < 0 else int(maps.max())
        raise ValueError(f"class id {bad} has no colour in a palette of {len(table)} colours")
    return table[maps]


def make_grid(
    maps: Union[np.ndarray, torch.Tensor, Sequence],
    palette: Optional[Sequence[Sequence[int]]] = None,
    num_columns: Optional[int] = None,
    scale: int = 2,
    padding: int = 2,
):
    """
    One PIL image holding a batch of maps `(N, H, W)` in a grid, or a sampling chain.

    Args:
        maps: class ids `(N, H, W)`, or a chain: a list of `(N, H, W)` states (as `return_chain=True` with
            `output_type="pt"` or `"np"` gives), drawn as one row per sample and one column per state.
        palette: one RGB colour per class; defaults to `default_palette`.
        num_columns: maps per row for a batch (defaults to about sqrt(N)).
        scale: each pixel becomes a `scale` x `scale` block.
        padding: white pixels between maps.
    """
    from PIL import Image

    if isinstance(maps, (list, tuple)):
        chain = np.stack([m.detach().cpu().numpy() if torch.is_tensor(m) else np.asarray(m) for m in maps], axis=1)
        num_rows, num_columns = chain.shape[:2]
        tiles = chain.reshape(-1, *chain.shape[2:])
    else:
        tiles = maps.detach().cpu().numpy() if torch.is_tensor(maps) else np.asarray(maps)
        num_columns = num_columns or int(np.ceil(np.sqrt(len(tiles))))
        num_rows = int(np.ceil(len(tiles) / num_columns))
    if tiles.ndim != 3:
        raise ValueError(f"maps must have shape (N, H, W) or be a list of such, got tiles of shape {tiles.shape}")
    palette = palette or default_palette(int(tiles.max()) + 1)
    rgb = colorize(tiles, palette).repeat(scale, axis=1).repeat(scale, axis=2)
    height, width = rgb.shape[1:3]
    grid = np.full((num_rows * (height + padding) + padding, num_columns * (width + padding) + padding, 3), 255, np.uint8)
    for index, tile in enumerate(rgb):
        row, column = divmod(index, num_columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top : top + height, left : left + width] = tile
    return Image.fromarray(grid)
