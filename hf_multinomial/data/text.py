"""Character-level text datasets (text8, enwik8) as `datasets.DatasetDict`s.

A text is cut by position into train / validation / test (90% / 5% / 5%; for the real
100,000,000-character files this is exactly the split of Hoogeboom et al. 2021: the first
90M train, the next 5M validation, the last 5M test). Each split is then cut into
non-overlapping sequences of `seq_len` ids, one per row in the column `input_ids`; the
remainder of a split that does not fill a sequence is dropped.

Every split must hold at least one sequence: a file shorter than `20 * seq_len` characters
can leave validation or test empty, and that is an error (naming the split and the sizes),
not an empty split that a training run would silently skip.

Nothing is downloaded: the files must be on disk. The result is saved with `save_to_disk`
in a cache folder keyed by the file's content (its SHA-256, see `cache.file_sha256`), its
name, the vocabulary and `seq_len`, so a second call memory-maps the cached Arrow files
instead of re-encoding, and an edited file is never served from a stale cache.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import zipfile
import zlib

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, List, Value

from ..checks import check_count
from .cache import default_cache_dir, file_sha256, save_splits_atomically
from .vocabulary import CharVocabulary


SPLITS = ("train", "validation", "test")
BUNDLED_TEXT8_NAME = "enwiki_text8_sample.txt.xz"
_CACHE_VERSION = 2  # 2: keyed on the content hash of the file


def split_boundaries(n: int) -> dict[str, tuple[int, int]]:
    """Return `{split: (start, end)}` character ranges for a text of `n` characters.

    The first 90% is train, the next 5% validation and the last 5% test (integer
    arithmetic, so n = 100,000,000 gives exactly 90M / 5M / 5M).
    """
    if n < 0:
        raise ValueError(f"The text length must be >= 0, got {n}.")
    train_end = n * 9 // 10
    validation_end = n * 19 // 20
    return {"train": (0, train_end), "validation": (train_end, validation_end), "test": (validation_end, n)}


def load_text_file(
    path: str | os.PathLike,
    vocabulary: CharVocabulary,
    seq_len: int,
    cache_dir: str | os.PathLike | None = None,
) -> DatasetDict:
    """Encode a text file with `vocabulary` and cut it into train/validation/test sequences.

    Args:
        path: The text file. Plain text, or compressed: `.zip` (a single member, or the member
            named like the archive, e.g. `text8` in `text8.zip`), `.xz`, `.bz2` or `.gz`.
            Character vocabularies read it as UTF-8; byte-level ones read the raw bytes.
        vocabulary: Maps each character (or byte) to its id.
        seq_len: Number of ids per row.
        cache_dir: Where the prepared dataset is saved and looked up; defaults to
            `default_cache_dir()`.

    Returns:
        A `DatasetDict` with splits `train`, `validation`, `test` and one column `input_ids`
        (`seq_len` int64 ids per row).

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if `seq_len` is not a positive integer; if the file is a truncated or corrupt
            archive, is not UTF-8 (character vocabularies), or holds a character outside the
            vocabulary (the message names the file, the character and its position); if the
            text is too short to give every split at least one sequence (the message names the
            file, the split and the sizes).
    """
    path = os.fspath(path)
    check_seq_len(seq_len)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Text file not found: {path!r}")

    cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = os.path.join(cache_dir, _cache_name(path, vocabulary, seq_len))
    if os.path.isdir(cached):
        return DatasetDict.load_from_disk(cached)

    save_splits_atomically(_build_splits(path, vocabulary, seq_len), cache_dir, cached)
    return DatasetDict.load_from_disk(cached)


def load_text8(path_or_dir: str | os.PathLike, seq_len: int = 256, cache_dir: str | os.PathLike | None = None) -> DatasetDict:
    """text8 (27 symbols: space and `a`-`z`) as train/validation/test sequences.

    Args:
        path_or_dir: `text8.zip`, the unpacked `text8` file (or any text8-style text file,
            also `.xz`/`.bz2`), or a folder holding `text8` or `text8.zip`.
        seq_len: Characters per row (the paper uses 256).
        cache_dir: See `load_text_file`.
    """
    path = _resolve(path_or_dir, ["text8", "text8.zip"])
    return load_text_file(path, CharVocabulary.text8(), seq_len, cache_dir=cache_dir)


def load_enwik8(path_or_dir: str | os.PathLike, seq_len: int = 320, cache_dir: str | os.PathLike | None = None) -> DatasetDict:
    """enwik8 (raw bytes, 256 classes) as train/validation/test sequences.

    Args:
        path_or_dir: `enwik8.zip`, the unpacked `enwik8` file, or a folder holding either.
        seq_len: Bytes per row (the paper uses 320).
        cache_dir: See `load_text_file`.
    """
    path = _resolve(path_or_dir, ["enwik8", "enwik8.zip"])
    return load_text_file(path, CharVocabulary.bytes(), seq_len, cache_dir=cache_dir)


def bundled_text8_path() -> str:
    """Path of the bundled text8-style sample (English Wikipedia, about 3.1M characters)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "resources", BUNDLED_TEXT8_NAME)


def load_bundled_text8(seq_len: int = 256, cache_dir: str | os.PathLike | None = None) -> DatasetDict:
    """The bundled sample (see `bundled_text8_path`) cut like text8; works offline.

    Args:
        seq_len: Characters per row.
        cache_dir: See `load_text_file`.
    """
    return load_text_file(bundled_text8_path(), CharVocabulary.text8(), seq_len, cache_dir=cache_dir)


# What a truncated, cut or random archive raises while it is read: zipfile.BadZipFile ("File is not a zip file",
# "Bad CRC-32"), zlib.error (a corrupt deflate stream), EOFError (a truncated .xz/.gz/.bz2), lzma.LZMAError, and
# OSError (gzip.BadGzipFile, bz2's "Invalid data stream"); NotImplementedError / RuntimeError for an unsupported
# compression method or an encrypted zip member.
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, OSError, NotImplementedError, RuntimeError)
_COMPRESSED = ((".xz", lzma.open, "xz"), (".bz2", bz2.open, "bzip2"), (".gz", gzip.open, "gzip"))


def check_seq_len(seq_len) -> int:
    """`seq_len` if it is a positive integer; else a ValueError naming the value."""
    check_count("seq_len", seq_len)
    return seq_len


def read_text_bytes(path: str | os.PathLike) -> bytes:
    """Return the (decompressed) content of a `.zip`, `.xz`, `.bz2`, `.gz` or plain file.

    Raises:
        FileNotFoundError: if `path` is not a file.
        ValueError: if the archive is truncated, corrupt or not an archive of its kind (the message names the file
            and what was wrong), or a `.zip` has no member that clearly holds the text.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Text file not found: {path!r}")
    if path.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                member = _zip_member(archive, path)
                try:
                    return archive.read(member)
                except _ARCHIVE_ERRORS as error:
                    raise _corrupt(path, f"its member {member!r} cannot be decompressed", error) from error
        except zipfile.BadZipFile as error:  # the central directory: a truncated, cut or random file
            raise _corrupt(path, "it is not a complete zip archive", error) from error
    for suffix, opener, kind in _COMPRESSED:
        if path.endswith(suffix):
            with open(path, "rb") as raw:  # errors opening the file (permissions, ...) name it already
                try:
                    with opener(raw, "rb") as f:
                        return f.read()
                except _ARCHIVE_ERRORS as error:
                    what = "it is truncated" if isinstance(error, EOFError) else f"it is not a valid {kind} file"
                    raise _corrupt(path, what, error) from error
    with open(path, "rb") as f:
        return f.read()


def utf8_text(data: bytes, path: str) -> str:
    """The raw file content `data` of `path` as UTF-8 text.

    Raises:
        ValueError: naming `path`, the byte offset and the bytes found there, if the content is not UTF-8.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        found = data[error.start : error.start + 4]
        raise ValueError(
            f"{path!r} is not UTF-8 text: byte {error.start} is {found[:1]!r} ({error.reason}; the bytes there are "
            f"{found!r}). Re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or use the byte vocabulary."
        ) from error


def decode_text(data: bytes, vocabulary: CharVocabulary, path: str) -> np.ndarray:
    """The ids of the raw file content `data` of `path` under `vocabulary`: its bytes for a byte-level vocabulary,
    else its UTF-8 characters.

    Raises:
        ValueError: naming `path`, if the content is not UTF-8 (with the byte offset and the bytes found there) or
            holds a character outside the vocabulary (with the character and its position).
    """
    if vocabulary.byte_level:
        return vocabulary.encode_array(data)
    text = utf8_text(data, path)
    try:
        return vocabulary.encode_array(text)
    except ValueError as error:
        raise ValueError(f"{path!r}: {error}") from error


def _corrupt(path: str, what: str, error: BaseException) -> ValueError:
    return ValueError(f"Cannot read {path!r}: {what} ({type(error).__name__}: {error}).")


# --------------------------------------------------------------------------- internals
def _build_splits(path: str, vocabulary: CharVocabulary, seq_len: int) -> DatasetDict:
    ids = decode_text(read_text_bytes(path), vocabulary, path)
    unit = "bytes" if vocabulary.byte_level else "characters"
    if len(ids) < seq_len:
        raise ValueError(f"{path!r} holds {len(ids)} {unit}, fewer than one sequence of seq_len={seq_len}.")
    boundaries = split_boundaries(len(ids))
    for name, (start, end) in boundaries.items():
        if end - start < seq_len:  # an empty split would silently give no validation or test numbers
            sizes = ", ".join(f"{split} {e - s}" for split, (s, e) in boundaries.items())
            raise ValueError(
                f"{path!r} holds {len(ids)} {unit}: its {name} split ({end - start} {unit}) is shorter than one "
                f"sequence of seq_len={seq_len}, so it would be empty (splits: {sizes} {unit}). Every split needs a "
                f"sequence: use a file of at least {20 * seq_len} {unit} (20 x seq_len) or a smaller seq_len."
            )

    features = Features({"input_ids": List(Value("int64"), length=seq_len)})
    splits = {}
    for name, (start, end) in boundaries.items():
        num_rows = (end - start) // seq_len
        # A fixed-size list array over the flat ids: no copy, and far faster than nested lists.
        rows = pa.FixedSizeListArray.from_arrays(pa.array(ids[start : start + num_rows * seq_len]), seq_len)
        splits[name] = Dataset.from_dict({"input_ids": rows}, features=features)
    return DatasetDict(splits)


def _cache_name(path: str, vocabulary: CharVocabulary, seq_len: int) -> str:
    # The content, not the size and modification time: a file edited in place with both kept (an editor, `touch -r`,
    # a copy with preserved times) must not be served from the stale cache. The name is part of the key because the
    # suffix says how the file is decompressed and a zip's name which member is read.
    key = {
        "sha256": file_sha256(path),
        "name": os.path.basename(path),
        "vocabulary": vocabulary.to_dict(),
        "seq_len": seq_len,
        "version": _CACHE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    stem = os.path.basename(path).split(".")[0] or "text"
    return f"{stem}-seq{seq_len}-{digest}"


def _resolve(path_or_dir: str | os.PathLike, names: list[str]) -> str:
    """A file path as is; for a folder, the first of `names` found inside it."""
    path = os.fspath(path_or_dir)
    if os.path.isdir(path):
        for name in names:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(f"None of {names} found in the folder {path!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"File or folder not found: {path!r}")
    return path


def _zip_member(archive: zipfile.ZipFile, path: str) -> str:
    members = [info.filename for info in archive.infolist() if not info.is_dir()]
    stem = os.path.basename(path)[: -len(".zip")]
    named = [m for m in members if os.path.basename(m) == stem]
    if named:
        return named[0]
    if len(members) == 1:
        return members[0]
    raise ValueError(f"Cannot tell which member of {path!r} holds the text; it contains {members[:10]}.")
