"""Synthetic segmentation maps, generated on the fly from a seed.

For tests and for the demo that runs without Cityscapes: street-scene-like maps made of
axis-aligned rectangles, laid out like the 8 Cityscapes categories (sky band on top, a
construction background, flat ground at the bottom, trees, poles, vehicles and people standing
on the ground, sometimes a void strip at the bottom like the ego vehicle). The layout is
simple enough for a small model to learn it, so held-out maps score well below log2(8) bits
per pixel, yet random enough that maps differ.

* `random_rectangle_maps` gives category maps as an (N, H, W) int64 array;
* `synthetic_segmentation_dataset` gives a `DatasetDict` shaped like `load_cityscapes`'s;
* `write_synthetic_gtfine` writes full-size (1024 x 2048) label-id PNGs in Cityscapes' gtFine
  layout (or its zip), so `load_cityscapes` can be tested without the real, non-redistributable
  data.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Sequence

import numpy as np
from datasets import DatasetDict

from .cityscapes import CITYSCAPES_LABELS, CITYSCAPES_ZIP_NAME, maps_to_dataset


__all__ = [
    "random_rectangle_maps",
    "synthetic_segmentation_dataset",
    "write_synthetic_gtfine",
]

# Category ids (as in Cityscapes) used by the scene layout.
_VOID, _FLAT, _CONSTRUCTION, _OBJECT, _NATURE, _SKY, _HUMAN, _VEHICLE = range(8)

# Label ids painted into synthetic gtFine maps: a representative id per category (unlabeled,
# road, building, pole, vegetation, sky, person, car), used for most regions; the other ids of
# the category appear now and then so that every id of the table is exercised.
_REPRESENTATIVE_LABEL_ID = (0, 7, 11, 17, 21, 23, 24, 26)
_LABEL_IDS_BY_CATEGORY = tuple(
    tuple(label_id for _, label_id, _, cat_id in CITYSCAPES_LABELS if cat_id == category and label_id >= 0)
    for category in range(8)
)

DEFAULT_TRAIN_CITIES = ("aachen", "bochum", "bremen")
DEFAULT_VAL_CITIES = ("frankfurt", "lindau", "munster")


def random_rectangle_maps(
    num_maps: int,
    height: int = 32,
    width: int = 64,
    num_classes: int = 8,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """`num_maps` synthetic category maps, an (N, height, width) int64 array.

    With `num_classes=8` the classes are the Cityscapes categories (void 0, flat 1,
    construction 2, object 3, nature 4, sky 5, human 6, vehicle 7) and the maps look like
    coarse street scenes; with another number of classes category `c` becomes class
    `c % num_classes`. The same `seed` gives the same maps.
    """
    if not isinstance(num_maps, int) or num_maps < 0:
        raise ValueError(f"num_maps must be a non-negative integer, got {num_maps!r}.")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height} x {width}.")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
    rng = np.random.default_rng(seed)
    maps = np.empty((num_maps, height, width), dtype=np.int64)
    for i in range(num_maps):
        for category, y0, y1, x0, x1 in _scene(rng, height, width):
            maps[i, y0:y1, x0:x1] = category % num_classes
    return maps


def synthetic_segmentation_dataset(
    num_train: int = 2000,
    num_validation: int = 200,
    num_test: int = 200,
    height: int = 32,
    width: int = 64,
    num_classes: int = 8,
    seed: int = 0,
) -> DatasetDict:
    """Splits `train`, `validation`, `test` of `random_rectangle_maps`, with the column
    `input_ids` (an int64 (height, width) array per row) as `load_cityscapes` gives.

    Each split has its own random stream derived from `seed`, so the validation and test maps
    do not depend on `num_train`.
    """
    counts = {"train": num_train, "validation": num_validation, "test": num_test}
    return DatasetDict(
        {
            name: maps_to_dataset(
                random_rectangle_maps(count, height, width, num_classes, seed=np.random.default_rng([seed, index]))
            )
            for index, (name, count) in enumerate(counts.items())
        }
    )


def write_synthetic_gtfine(
    root: str | os.PathLike,
    num_train: int = 4,
    num_val: int = 2,
    *,
    train_cities: Sequence[str] = DEFAULT_TRAIN_CITIES,
    val_cities: Sequence[str] = DEFAULT_VAL_CITIES,
    seed: int = 0,
    archive: bool = False,
    height: int = 1024,
    width: int = 2048,
) -> str:
    """Write synthetic label-id maps in Cityscapes' gtFine layout under `root`.

    Map `k` of a split goes to city `cities[k % len(cities)]` as
    `gtFine/{train,val}/{city}/{city}_000000_{k // len(cities):06d}_gtFine_labelIds.png`: an
    8-bit ('L') PNG of `height` x `width` label ids of the official Cityscapes table (painted
    with the scene layout of `random_rectangle_maps`, mostly with a representative id per
    category: 0 unlabeled, 7 road, 11 building, 17 pole, 21 vegetation, 23 sky, 24 person,
    26 car; now and then with other ids of the same category).

    Args:
        root: Folder to write into (created if needed).
        num_train, num_val: Number of maps in `gtFine/train` and `gtFine/val`.
        train_cities, val_cities: City folder names, used in turn.
        seed: The same seed writes the same maps.
        archive: If True, write only `root/gtFine_trainvaltest.zip` (members `gtFine/...`, in a
            shuffled order) instead of the folder.
        height, width: Map size; Cityscapes' is 1024 x 2048.

    Returns:
        The path of the written `gtFine` folder, or of the zip with `archive=True`.
    """
    from PIL import Image

    if not train_cities or not val_cities:
        raise ValueError("train_cities and val_cities must not be empty.")
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    files: list[tuple[str, bytes]] = []
    for split, count, cities in (("train", num_train, train_cities), ("val", num_val, val_cities)):
        for k in range(count):
            city = cities[k % len(cities)]
            name = f"gtFine/{split}/{city}/{city}_000000_{k // len(cities):06d}_gtFine_labelIds.png"
            label_ids = np.empty((height, width), dtype=np.uint8)
            for category, y0, y1, x0, x1 in _scene(rng, height, width):
                label_ids[y0:y1, x0:x1] = _label_id(rng, category)
            buffer = io.BytesIO()
            Image.fromarray(label_ids, mode="L").save(buffer, format="PNG", compress_level=1)
            files.append((name, buffer.getvalue()))

    if archive:
        path = os.path.join(root, CITYSCAPES_ZIP_NAME)
        order = rng.permutation(len(files))
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
            for index in order:
                zf.writestr(*files[index])
        return path
    for name, data in files:
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return os.path.join(root, "gtFine")


# --------------------------------------------------------------------------- internals
def _scene(rng: np.random.Generator, height: int, width: int) -> list[tuple[int, int, int, int, int]]:
    """Rectangles `(category, y0, y1, x0, x1)` of one street-like scene, to paint in order."""

    def span(low: float, high: float, size: int) -> int:
        """A random integer in [low * size, high * size], at least 1."""
        return max(1, int(rng.integers(int(low * size), max(int(low * size), int(high * size)) + 1)))

    def x_range(w: int) -> tuple[int, int]:
        x0 = int(rng.integers(0, max(1, width - w + 1)))
        return x0, min(width, x0 + w)

    sky = span(0.15, 0.4, height)
    ground_top = height - span(0.25, 0.45, height)
    rects = [
        (_CONSTRUCTION, 0, height, 0, width),
        (_SKY, 0, sky, 0, width),
        (_FLAT, ground_top, height, 0, width),
    ]
    for _ in range(rng.integers(0, 3)):  # trees: from the sky band down to the ground
        x0, x1 = x_range(span(0.1, 0.3, width))
        rects.append((_NATURE, span(0.05, 0.35, height), ground_top, x0, x1))
    for _ in range(rng.integers(0, 4)):  # poles
        x0, x1 = x_range(span(0.01, 0.03, width))
        rects.append((_OBJECT, span(0.1, 0.4, height), min(height, ground_top + span(0.0, 0.1, height)), x0, x1))
    for _ in range(rng.integers(1, 4)):  # vehicles standing on the ground
        x0, x1 = x_range(span(0.12, 0.3, width))
        bottom = int(rng.integers(ground_top, height)) + 1
        rects.append((_VEHICLE, max(0, bottom - span(0.12, 0.25, height)), bottom, x0, x1))
    for _ in range(rng.integers(0, 3)):  # people
        x0, x1 = x_range(span(0.015, 0.04, width))
        bottom = int(rng.integers(ground_top, height)) + 1
        rects.append((_HUMAN, max(0, bottom - span(0.15, 0.3, height)), bottom, x0, x1))
    if rng.random() < 0.5:  # ego vehicle / out-of-roi strip at the bottom
        rects.append((_VOID, height - span(0.05, 0.12, height), height, 0, width))
    return rects


def _label_id(rng: np.random.Generator, category: int) -> int:
    if rng.random() < 0.75:
        return _REPRESENTATIVE_LABEL_ID[category]
    return int(rng.choice(_LABEL_IDS_BY_CATEGORY[category]))
