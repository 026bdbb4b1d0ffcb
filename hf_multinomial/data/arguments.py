# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
The data arguments every task and the CLI share, as `HfArgumentParser` dataclasses, with the one function that turns
each into datasets, the names the model cards give the data, and the cutting of a text file into sequences.

    data_args = TextDataArguments(text_file="my.txt", seq_len=128)
    splits, vocabulary = load_text_data(data_args)        # DatasetDict of `input_ids`, CharVocabulary
    maps = load_map_data(MapDataArguments(height=32, width=64), seed=0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

import torch

from .cityscapes import load_cityscapes
from .synthetic_maps import synthetic_segmentation_dataset
from .text import bundled_text8_path, decode_text, load_enwik8, load_text8, load_text_file, read_text_bytes
from .vocabulary import CharVocabulary

TEXT_DATASETS = ("text8", "enwik8")
VOCABULARIES = ("text8", "bytes")


def _positive(name: str, value, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass
class TextDataArguments:
    """Text data: a real dataset (`dataset` + `data_dir`), any text file, or by default the bundled Wikipedia sample."""

    dataset: Optional[str] = field(default=None, metadata={"help": "text8 or enwik8; needs --data_dir.",
                                                           "choices": TEXT_DATASETS})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Folder (or file) holding text8/text8.zip or "
                                                                    "enwik8/enwik8.zip (nothing is downloaded)."})
    text_file: Optional[str] = field(default=None, metadata={"help": "Any text file, split 90/5/5 by position."})
    vocabulary: str = field(default="text8", metadata={
        "help": "text8: space and a-z; bytes: the 256 byte values (a named dataset sets its own).",
        "choices": VOCABULARIES})
    seq_len: int = field(default=256, metadata={"help": "Characters per sequence."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where prepared datasets are cached."})

    def __post_init__(self):
        if self.dataset is not None and self.dataset not in TEXT_DATASETS:
            raise ValueError(f"dataset must be one of {TEXT_DATASETS}, got {self.dataset!r}")
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {self.vocabulary!r}")
        if self.dataset and not self.data_dir:
            raise ValueError(f"--dataset {self.dataset} needs --data_dir (nothing is downloaded)")
        if self.dataset and self.text_file:
            raise ValueError("Pass either --dataset/--data_dir or --text_file, not both")
        if self.data_dir and not self.dataset:
            raise ValueError(f"--data_dir {self.data_dir!r} needs --dataset text8 or --dataset enwik8")
        if self.dataset:
            self.vocabulary = {"text8": "text8", "enwik8": "bytes"}[self.dataset]
        _positive("seq_len", self.seq_len, allow_none=False)

    def make_vocabulary(self) -> CharVocabulary:
        return CharVocabulary.bytes() if self.vocabulary == "bytes" else CharVocabulary.text8()

    def dataset_id(self) -> tuple[str, str]:
        """`(dataset id, pretty name)` of the data, for the `model-index` results of model cards."""
        if self.dataset:
            return self.dataset, self.dataset
        if self.text_file:
            return "text-file", f"text file {os.path.basename(self.text_file)}"
        return "hf-multinomial/enwiki-text8-sample", "English Wikipedia sample in text8 format"

    def description(self) -> str:
        """One line for the model card's training-data section."""
        if self.dataset:
            return f"{self.dataset} ({self.data_dir})"
        if self.text_file:
            return f"text file {os.path.basename(self.text_file)}"
        return "the bundled English Wikipedia sample in text8 format (CC BY-SA)"

    def card_datasets(self) -> Optional[list]:
        """The Hub dataset ids of the card's metadata (None for a local file)."""
        return [self.dataset] if self.dataset else None


def load_text_data(args: TextDataArguments):
    """`(DatasetDict with torch-format input_ids, CharVocabulary)` for `args`."""
    vocabulary = args.make_vocabulary()
    if args.dataset == "text8":
        data = load_text8(args.data_dir, seq_len=args.seq_len, cache_dir=args.cache_dir)
    elif args.dataset == "enwik8":
        data = load_enwik8(args.data_dir, seq_len=args.seq_len, cache_dir=args.cache_dir)
    else:
        path = args.text_file or bundled_text8_path()
        data = load_text_file(path, vocabulary, seq_len=args.seq_len, cache_dir=args.cache_dir)
    return data.with_format("torch"), vocabulary


@dataclass
class MapDataArguments:
    """Segmentation maps: Cityscapes (`data_root`), or by default synthetic street-scene maps."""

    data_root: Optional[str] = field(default=None, metadata={
        "help": "Cityscapes: gtFine_trainvaltest.zip, its unpacked gtFine/ folder, or a folder holding either."})
    num_synthetic_maps: int = field(default=2000, metadata={"help": "Training maps when no --data_root."})
    height: int = field(default=32, metadata={"help": "Map height in pixels."})
    width: int = field(default=64, metadata={"help": "Map width in pixels."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where prepared datasets are cached."})

    def __post_init__(self):
        for name in ("num_synthetic_maps", "height", "width"):
            _positive(name, getattr(self, name), allow_none=False)

    def dataset_id(self) -> tuple[str, str]:
        if self.data_root:
            return "cityscapes", "Cityscapes (8 categories)"
        return "hf-multinomial/synthetic-street-maps", "synthetic street-scene maps"

    def description(self) -> str:
        return self.dataset_id()[1]

    def card_datasets(self) -> Optional[list]:
        return ["cityscapes"] if self.data_root else None


def load_map_data(args: MapDataArguments, seed: int = 0):
    """A DatasetDict of torch-format `input_ids` maps of shape (height, width): Cityscapes with `data_root`, else the
    synthetic maps of `seed`."""
    size = (args.height, args.width)
    if args.data_root:
        data = load_cityscapes(args.data_root, size=size, cache_dir=args.cache_dir)
    else:
        data = synthetic_segmentation_dataset(num_train=args.num_synthetic_maps, height=size[0], width=size[1],
                                              seed=seed)
    return data.select_columns(["input_ids"]).with_format("torch")


def text_file_sequences(path: str, vocabulary: CharVocabulary, seq_len: int,
                        max_sequences: Optional[int] = None) -> torch.LongTensor:
    """Non-overlapping sequences of `seq_len` ids cut from a whole text file (the remainder is dropped), shape
    `(N, seq_len)`; at most `max_sequences` of them (None: all).

    Raises:
        ValueError: if `seq_len` or `max_sequences` is not a positive integer, the file is a corrupt archive, not
            UTF-8 or holds a character outside the vocabulary, or it is shorter than one sequence (the message names
            the file, its length and `seq_len`).
    """
    _positive("seq_len", seq_len, allow_none=False)
    _positive("max_sequences", max_sequences)
    path = os.fspath(path)
    ids = decode_text(read_text_bytes(path), vocabulary, path)
    count = len(ids) // seq_len
    if count == 0:
        unit = "bytes" if vocabulary.byte_level else "characters"
        raise ValueError(f"{path!r} holds {len(ids)} {unit}, fewer than one sequence of seq_len={seq_len}")
    if max_sequences is not None:
        count = min(count, max_sequences)
    return torch.from_numpy(ids[: count * seq_len].reshape(count, seq_len)).long()
