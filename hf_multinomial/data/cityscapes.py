"""Cityscapes segmentation maps (8 categories) as a `datasets.DatasetDict`.

The segmentation experiments of Hoogeboom et al. 2021 (appendix B.2) model the fine
annotations of Cityscapes at the level of its 8 *categories*: each 1024 x 2048 label map is
resized with nearest-neighbour sampling to 32 x 64 (or 128 x 256) and every label id is
replaced by the id of its category (void 0, flat 1, construction 2, object 3, nature 4,
sky 5, human 6, vehicle 7).

Nothing is downloaded: Cityscapes is only available to registered users
(https://www.cityscapes-dataset.com/downloads/, file `gtFine_trainvaltest.zip`), and its
licence forbids redistributing the maps. `load_cityscapes` reads that zip, or its unpacked
`gtFine/` folder, from disk:

    gtFine/train/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (2975 maps)
    gtFine/val/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png     (500 maps)

Only the `*_gtFine_labelIds.png` files are used (not the colour, instance or polygon files,
and not `gtFine/test`, whose annotations are withheld). Splits follow the paper: the
official train maps, sorted by path, give `train` (the first 2500) and `validation` (the
remaining 475); the 500 official val maps give `test`.

The prepared dataset is saved with `save_to_disk` in a cache folder keyed by the source's
content (the SHA-256 of the zip, or of every label map of the folder, with their names), the
output size and the split rule, so a second call memory-maps the cached Arrow files instead of
decoding the PNGs again, and an edited map is never served from a stale cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
import zlib
from typing import Sequence

import numpy as np
import pyarrow as pa
from datasets import Array2D, Dataset, DatasetDict, Features, Value

from .cache import default_cache_dir, file_sha256, save_splits_atomically


__all__ = [
    "CITYSCAPES_LABELS",
    "CITYSCAPES_LABEL_TO_CATEGORY",
    "CITYSCAPES_CATEGORY_NAMES",
    "CITYSCAPES_CATEGORY_COLORS",
    "CITYSCAPES_NUM_TRAIN",
    "CITYSCAPES_SOURCE_SIZE",
    "CITYSCAPES_ZIP_NAME",
    "cityscapes_categories",
    "load_cityscapes",
    "maps_to_dataset",
    "nearest_indices",
    "nearest_resize",
]


# --------------------------------------------------------------------------- label table
# The Cityscapes label table: (name, label id, category, category id), with the values of the
# official `labels` list in `cityscapesscripts/helpers/labels.py`
# (https://github.com/mcordts/cityscapesScripts, fields name, id, trainId, category,
# categoryId, ...; trainId and the remaining fields are not needed here). Label ids 0..33
# are the values stored in `*_gtFine_labelIds.png`; the license plate has id -1 in the
# official table (it has no value of its own in the PNGs, where plates carry the id of the
# vehicle) and belongs to the vehicle category.
CITYSCAPES_LABELS: tuple[tuple[str, int, str, int], ...] = (
    ("unlabeled", 0, "void", 0),
    ("ego vehicle", 1, "void", 0),
    ("rectification border", 2, "void", 0),
    ("out of roi", 3, "void", 0),
    ("static", 4, "void", 0),
    ("dynamic", 5, "void", 0),
    ("ground", 6, "void", 0),
    ("road", 7, "flat", 1),
    ("sidewalk", 8, "flat", 1),
    ("parking", 9, "flat", 1),
    ("rail track", 10, "flat", 1),
    ("building", 11, "construction", 2),
    ("wall", 12, "construction", 2),
    ("fence", 13, "construction", 2),
    ("guard rail", 14, "construction", 2),
    ("bridge", 15, "construction", 2),
    ("tunnel", 16, "construction", 2),
    ("pole", 17, "object", 3),
    ("polegroup", 18, "object", 3),
    ("traffic light", 19, "object", 3),
    ("traffic sign", 20, "object", 3),
    ("vegetation", 21, "nature", 4),
    ("terrain", 22, "nature", 4),
    ("sky", 23, "sky", 5),
    ("person", 24, "human", 6),
    ("rider", 25, "human", 6),
    ("car", 26, "vehicle", 7),
    ("truck", 27, "vehicle", 7),
    ("bus", 28, "vehicle", 7),
    ("caravan", 29, "vehicle", 7),
    ("trailer", 30, "vehicle", 7),
    ("train", 31, "vehicle", 7),
    ("motorcycle", 32, "vehicle", 7),
    ("bicycle", 33, "vehicle", 7),
    ("license plate", -1, "vehicle", 7),
)

#: Label id -> category id, for every id of the official table (0..33 and -1).
CITYSCAPES_LABEL_TO_CATEGORY: dict[int, int] = {label_id: cat_id for _, label_id, _, cat_id in CITYSCAPES_LABELS}

#: The 8 category names, indexed by category id.
CITYSCAPES_CATEGORY_NAMES: tuple[str, ...] = (
    "void", "flat", "construction", "object", "nature", "sky", "human", "vehicle",
)

#: One RGB colour per category, indexed by category id. Cityscapes defines colours per label,
#: not per category; each category is drawn in the official colour of its most common label:
#: void = unlabeled (black), flat = road, construction = building, object = pole,
#: nature = vegetation, sky = sky, human = person, vehicle = car.
CITYSCAPES_CATEGORY_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 64, 128),
    (70, 70, 70),
    (153, 153, 153),
    (107, 142, 35),
    (70, 130, 180),
    (220, 20, 60),
    (0, 0, 142),
)

#: Number of official train maps (sorted by path) that go to `train`; the rest is `validation`.
CITYSCAPES_NUM_TRAIN = 2500
#: The archive name on the Cityscapes download page.
CITYSCAPES_ZIP_NAME = "gtFine_trainvaltest.zip"
#: Height and width of the official label maps.
CITYSCAPES_SOURCE_SIZE = (1024, 2048)

_MIN_LABEL_ID = min(CITYSCAPES_LABEL_TO_CATEGORY)
_MAX_LABEL_ID = max(CITYSCAPES_LABEL_TO_CATEGORY)
# Lookup table indexed by `label_id - _MIN_LABEL_ID`; the ids form a contiguous range.
_CATEGORY_LUT = np.array(
    [CITYSCAPES_LABEL_TO_CATEGORY[i] for i in range(_MIN_LABEL_ID, _MAX_LABEL_ID + 1)], dtype=np.int64
)
_LABEL_FILE = re.compile(r"(?:^|/)gtFine/(train|val)/([^/]+)/([^/]+_gtFine_labelIds\.png)$")
_ACCEPTED_MODES = ("L", "I", "I;16")  # integer single-channel images
_CACHE_VERSION = 2  # 2: keyed on the content of the source


# --------------------------------------------------------------------------- preprocessing
def cityscapes_categories(label_ids: np.ndarray, file: str | None = None) -> np.ndarray:
    """Map Cityscapes label ids (any integer array) to category ids 0..7 (int64, same shape).

    Raises:
        ValueError: if an id is not in the official table (0..33, -1); the message names
            the offending values and, when given, `file`.
    """
    label_ids = np.asarray(label_ids)
    if not np.issubdtype(label_ids.dtype, np.integer):
        where = f" in {file!r}" if file is not None else ""
        raise ValueError(f"Label ids must be integers, got dtype {label_ids.dtype}{where}.")
    _check_label_ids(label_ids, repr(file) if file is not None else None)
    return _CATEGORY_LUT[label_ids.astype(np.int64) - _MIN_LABEL_ID]


def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source indices that nearest-neighbour resizing from `src` to `dst` pixels samples.

    Output pixel `i` takes the source pixel under its centre, `floor((i + 0.5) * src / dst)`,
    evaluated exactly as Pillow's `Image.resize(..., Image.NEAREST)` does it (a start of
    `scale / 2` advanced by `scale = src / dst` per pixel in double precision). For the
    Cityscapes sizes (1024 x 2048 to 32 x 64 or 128 x 256) the scale is a power of two and
    this is the exact value; for other ratios it can differ from the exact rational value by
    one at pixels whose centre falls exactly on a source pixel boundary, as Pillow's does.
    """
    if src < 1 or dst < 1:
        raise ValueError(f"Sizes must be positive, got src={src}, dst={dst}.")
    scale = src / dst
    position = scale * 0.5
    indices = np.empty(dst, dtype=np.int64)
    for i in range(dst):  # repeated addition, as Pillow's C loop; a few hundred steps at most
        indices[i] = int(position)
        position += scale
    return np.minimum(indices, src - 1)


def nearest_resize(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of a (..., H, W) array to (..., height, width) = `size`.

    Identical to Pillow's `Image.resize((width, height), Image.NEAREST)` on a label image;
    see `nearest_indices`.
    """
    labels = np.asarray(labels)
    height, width = _check_size(size)
    rows = nearest_indices(labels.shape[-2], height)
    cols = nearest_indices(labels.shape[-1], width)
    return labels[..., rows[:, None], cols[None, :]]


# --------------------------------------------------------------------------- loader
def load_cityscapes(
    root: str | os.PathLike,
    size: Sequence[int] = (32, 64),
    cache_dir: str | os.PathLike | None = None,
    *,
    num_train: int = CITYSCAPES_NUM_TRAIN,
    source_size: Sequence[int] | None = CITYSCAPES_SOURCE_SIZE,
) -> DatasetDict:
    """Cityscapes category maps, prepared as in Hoogeboom et al. 2021 (B.2).

    Args:
        root: `gtFine_trainvaltest.zip`, its unpacked `gtFine/` folder, or a folder that
            holds either (an unpacked `gtFine/` is preferred over the zip).
        size: `(height, width)` of the output maps: `(32, 64)` as in the paper, or
            `(128, 256)`.
        cache_dir: Where the prepared dataset is saved and looked up; defaults to
            `hf_multinomial.data.cache.default_cache_dir()`.
        num_train: How many of the sorted official train maps go to `train` (the paper:
            2500); the others go to `validation`.
        source_size: Required `(height, width)` of every label map; `None` accepts any size.

    Returns:
        A `DatasetDict` with splits `train`, `validation`, `test` and columns `input_ids`
        (an int64 `(height, width)` array of category ids 0..7 per row) and `file` (the
        map's path relative to the dataset root, e.g. `gtFine/train/aachen/..._labelIds.png`).
        Rows are sorted by `file`.

    Raises:
        FileNotFoundError: if `root` does not exist or holds no Cityscapes label maps.
        ValueError: if a map is not a single-channel integer image of `source_size`, or holds
            a label id outside the official table (the message names the file).
    """
    height, width = _check_size(size)
    if not isinstance(num_train, int) or isinstance(num_train, bool) or num_train < 0:
        raise ValueError(f"num_train must be a non-negative integer, got {num_train!r}.")
    if source_size is not None:
        source_size = _check_size(source_size)

    source = _CityscapesSource(root)
    files = source.label_files()
    cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    key = {
        "source": source.fingerprint(files),
        "size": [height, width],
        "num_train": num_train,
        "source_size": list(source_size) if source_size is not None else None,
        "version": _CACHE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cached = os.path.join(cache_dir, f"cityscapes-{height}x{width}-{digest}")
    if os.path.isdir(cached):
        return DatasetDict.load_from_disk(cached)

    split_files = {
        "train": files["train"][:num_train],
        "validation": files["train"][num_train:],
        "test": files["val"],
    }
    splits = DatasetDict(
        {
            name: _build_split(source, names, (height, width), source_size, desc=f"Cityscapes {name}")
            for name, names in split_files.items()
        }
    )
    save_splits_atomically(splits, cache_dir, cached)
    return DatasetDict.load_from_disk(cached)


def maps_to_dataset(maps: np.ndarray, files: Sequence[str] | None = None) -> Dataset:
    """A `Dataset` with an int64 `input_ids` column of shape (H, W) per row from (N, H, W) maps.

    With `files`, a string column `file` is added (one entry per map).
    """
    maps = np.ascontiguousarray(maps, dtype=np.int64)
    if maps.ndim != 3:
        raise ValueError(f"Expected maps of shape (N, H, W), got {maps.shape}.")
    n, height, width = maps.shape
    # Array2D's storage is a list (rows) of lists (pixels); building it directly from the flat
    # buffer is much faster than letting `datasets` convert one numpy array per row.
    row_offsets = pa.array(np.arange(0, n * height * width + 1, width, dtype=np.int32))
    rows = pa.ListArray.from_arrays(row_offsets, pa.array(maps.reshape(-1)))
    images = pa.ListArray.from_arrays(pa.array(np.arange(0, n * height + 1, height, dtype=np.int32)), rows)
    columns = {"input_ids": images}
    features = {"input_ids": Array2D(shape=(height, width), dtype="int64")}
    if files is not None:
        files = list(files)
        if len(files) != n:
            raise ValueError(f"Got {n} maps but {len(files)} file names.")
        columns["file"] = files
        features["file"] = Value("string")
    return Dataset.from_dict(columns, features=Features(features))


# --------------------------------------------------------------------------- internals
class _CityscapesSource:
    """The label maps of a `gtFine/` folder or a `gtFine_trainvaltest.zip`."""

    def __init__(self, root: str | os.PathLike):
        root = os.fspath(root)
        self.zip_path: str | None = None
        self.gtfine_dir: str | None = None
        if os.path.isfile(root):
            if not zipfile.is_zipfile(root):
                raise ValueError(f"{root!r} is not a zip archive; expected {CITYSCAPES_ZIP_NAME} or a gtFine/ folder.")
            self.zip_path = root
        elif os.path.isdir(root):
            if os.path.isdir(os.path.join(root, "gtFine")):
                self.gtfine_dir = os.path.join(root, "gtFine")
            elif any(os.path.isdir(os.path.join(root, split)) for split in ("train", "val")):
                self.gtfine_dir = root  # the unpacked gtFine/ folder itself
            elif os.path.isfile(os.path.join(root, CITYSCAPES_ZIP_NAME)):
                self.zip_path = os.path.join(root, CITYSCAPES_ZIP_NAME)
            else:
                raise FileNotFoundError(
                    f"Neither a gtFine/ folder nor {CITYSCAPES_ZIP_NAME} found in {root!r}. Cityscapes needs a "
                    f"registered account: download {CITYSCAPES_ZIP_NAME} from "
                    "https://www.cityscapes-dataset.com/downloads/ and pass its path (or its folder)."
                )
        else:
            raise FileNotFoundError(f"File or folder not found: {root!r}")
        self._members: dict[str, str] = {}  # relative path -> zip member name

    @property
    def path(self) -> str:
        return self.zip_path if self.zip_path is not None else self.gtfine_dir

    def label_files(self) -> dict[str, list[str]]:
        """`{"train": [...], "val": [...]}`: sorted relative paths `gtFine/<split>/<city>/<name>`."""
        found: dict[str, list[str]] = {"train": [], "val": []}
        if self.zip_path is not None:
            with _open_zip(self.zip_path) as archive:
                for member in archive.namelist():
                    match = _LABEL_FILE.search(member)
                    if match is None or member.startswith("__MACOSX/"):
                        continue
                    relative = "gtFine/" + "/".join(match.groups())
                    if relative in self._members:
                        raise ValueError(
                            f"{self.zip_path!r} holds {relative!r} twice ({self._members[relative]!r} and {member!r})."
                        )
                    self._members[relative] = member
                    found[match.group(1)].append(relative)
        else:
            for split in found:
                split_dir = os.path.join(self.gtfine_dir, split)
                if not os.path.isdir(split_dir):
                    continue
                for city in os.listdir(split_dir):
                    city_dir = os.path.join(split_dir, city)
                    if not os.path.isdir(city_dir):
                        continue
                    for name in os.listdir(city_dir):
                        if name.endswith("_gtFine_labelIds.png"):
                            found[split].append(f"gtFine/{split}/{city}/{name}")
        for split, names in found.items():
            if not names:
                raise FileNotFoundError(f"No gtFine/{split}/<city>/*_gtFine_labelIds.png found in {self.path!r}.")
            names.sort()
        return found

    def fingerprint(self, files: dict[str, list[str]]) -> dict:
        """The content hash of the source (not sizes and modification times, which an in-place edit can keep)."""
        if self.zip_path is not None:
            return {"zip_sha256": file_sha256(self.zip_path)}
        digest = hashlib.sha256()
        for names in files.values():
            for name in names:
                path = self._file_path(name)
                try:
                    content = file_sha256(path)
                except OSError as error:
                    raise _unreadable(repr(path), error) from error
                digest.update(f"{name}\0{content}\n".encode())
        return {"files_sha256": digest.hexdigest()}

    def open(self, archive: zipfile.ZipFile | None, relative: str):
        from PIL import Image

        if archive is not None:
            return Image.open(io.BytesIO(archive.read(self._members[relative])))
        return Image.open(self._file_path(relative))

    def describe(self, relative: str) -> str:
        """The file, quoted, for error messages."""
        if self.zip_path is not None:
            return f"{self._members[relative]!r} in {self.zip_path!r}"
        return repr(self._file_path(relative))

    def _file_path(self, relative: str) -> str:
        return os.path.join(self.gtfine_dir, *relative.split("/")[1:])


def _build_split(
    source: _CityscapesSource,
    names: list[str],
    size: tuple[int, int],
    source_size: tuple[int, int] | None,
    desc: str,
) -> Dataset:
    from tqdm.auto import tqdm

    maps = np.empty((len(names), *size), dtype=np.uint8)
    archive = _open_zip(source.zip_path) if source.zip_path is not None else None
    try:
        for i, name in enumerate(tqdm(names, desc=desc, disable=None)):
            where = source.describe(name)
            try:
                image = source.open(archive, name)
            except _READ_ERRORS as error:  # a missing, truncated or corrupt file or zip member
                raise _unreadable(where, error) from error
            with image:
                _check_image(image, where, source_size)  # mode and size: the header only
                try:
                    label_ids = np.asarray(image)  # decodes the PNG
                except _READ_ERRORS as error:  # truncated or corrupt image data
                    raise _unreadable(where, error) from error
            _check_label_ids(label_ids, where)  # the whole map, not just the sampled pixels
            maps[i] = cityscapes_categories(nearest_resize(label_ids, size))
    finally:
        if archive is not None:
            archive.close()
    return maps_to_dataset(maps, names)


# What reading a label map can raise: OSError (a missing or unreadable file; Pillow's "cannot identify image file",
# "image file is truncated"), SyntaxError and ValueError (Pillow on a broken PNG chunk), and for a zip member
# zipfile.BadZipFile ("Bad CRC-32"), zlib.error (a corrupt deflate stream), EOFError (a cut member),
# NotImplementedError / RuntimeError (an unsupported compression method, an encrypted member).
_READ_ERRORS = (OSError, SyntaxError, ValueError, zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError,
                RuntimeError)


def _unreadable(where: str, error: BaseException) -> ValueError:
    return ValueError(f"Cannot read the label map {where}: {type(error).__name__}: {error}")


def _open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f"Cannot read {path!r}: it is not a complete zip archive ({type(error).__name__}: {error}).") from error


def _check_image(image, where: str, source_size: tuple[int, int] | None) -> None:
    if image.mode not in _ACCEPTED_MODES:
        raise ValueError(
            f"The label map {where} has image mode {image.mode!r}; expected a single-channel label-id image "
            "(mode 'L'), as the *_gtFine_labelIds.png files are."
        )
    if source_size is not None and (image.height, image.width) != tuple(source_size):
        raise ValueError(
            f"The label map {where} is {image.height} x {image.width} (height x width); expected "
            f"{source_size[0]} x {source_size[1]}. Pass source_size=None to accept other sizes."
        )


def _check_label_ids(label_ids: np.ndarray, where: str | None) -> None:
    """Raise a ValueError naming `where` (an already quoted file description) for unknown ids."""
    if label_ids.size == 0:
        return
    low, high = label_ids.min(), label_ids.max()
    if low >= _MIN_LABEL_ID and high <= _MAX_LABEL_ID:
        return
    flat = label_ids.reshape(-1)
    bad = np.unique(flat[(flat < _MIN_LABEL_ID) | (flat > _MAX_LABEL_ID)])
    shown = ", ".join(str(int(v)) for v in bad[:10]) + (", ..." if len(bad) > 10 else "")
    raise ValueError(
        f"Label id(s) {shown} outside the Cityscapes label table (ids {_MIN_LABEL_ID}..{_MAX_LABEL_ID})"
        + (f" in {where}" if where else "")
        + "."
    )


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    try:
        values = tuple(size)
    except TypeError:
        values = ()
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(f"A size must be (height, width) with two positive integers, got {size!r}.")
    return int(values[0]), int(values[1])
