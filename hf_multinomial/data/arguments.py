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

import numpy as np
import torch

from ..checks import check_count

from .cityscapes import load_cityscapes
from .synthetic_maps import synthetic_segmentation_dataset
from .text import (bundled_text8_path, decode_text, load_enwik8, load_text8, load_text_file, read_text_bytes,
                   utf8_text)
from .vocabulary import CharVocabulary

TEXT_DATASETS = ("text8", "enwik8")
VOCABULARIES = ("text8", "bytes")


DATA_FILE_TYPES = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json", ".csv": "csv",
                   ".parquet": "parquet"}


@dataclass
class TextDataArguments:
    """
    Text data: text8 or enwik8 (`dataset` + `data_dir`), any text file (`text_file`), any `datasets` dataset
    (`dataset_name`: a Hub id served from the local cache, or a folder written by `save_to_disk`) or data files
    (`train_file` / `validation_file`: txt, json, jsonl, csv, parquet), or by default the bundled Wikipedia sample.
    `tokenizer_name` (a transformers tokenizer folder or Hub id) replaces the character vocabulary.
    """

    dataset: Optional[str] = field(default=None, metadata={"help": "text8 or enwik8; needs --data_dir.",
                                                           "choices": TEXT_DATASETS})
    data_dir: Optional[str] = field(default=None, metadata={"help": "Folder (or file) holding text8/text8.zip or "
                                                                    "enwik8/enwik8.zip (nothing is downloaded)."})
    text_file: Optional[str] = field(default=None, metadata={"help": "Any text file, split 90/5/5 by position."})
    dataset_name: Optional[str] = field(default=None, metadata={
        "help": "A datasets dataset: a Hub id (from the local cache) or a folder written by save_to_disk."})
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "Its configuration name."})
    train_file: Optional[str] = field(default=None, metadata={"help": "Training data: txt, json, jsonl, csv, parquet."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Validation data, the same kinds."})
    text_column: str = field(default="text", metadata={"help": "The column that holds the text."})
    validation_split_percentage: int = field(default=5, metadata={
        "help": "Percent of the training split held out for validation when the data has no validation split."})
    tokenizer_name: Optional[str] = field(default=None, metadata={
        "help": "A transformers tokenizer (folder or Hub id from the local cache) instead of the character "
                "vocabulary; make one with `hf-multinomial train-tokenizer`."})
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
        sources = [name for name in ("dataset", "text_file", "dataset_name", "train_file")
                   if getattr(self, name) is not None]
        if len(sources) > 1:
            raise ValueError(f"Give one source of text, got --{' and --'.join(sources)}")
        if self.validation_file and not self.train_file:
            raise ValueError(f"--validation_file {self.validation_file!r} needs --train_file")
        for name in ("train_file", "validation_file"):
            path = getattr(self, name)
            if path is not None and _data_file_type(path) is None:
                raise ValueError(f"--{name} {path!r}: cannot read files of this kind; give one of "
                                 f"{sorted(DATA_FILE_TYPES)}")
        if self.tokenizer_name and self.dataset:
            raise ValueError(f"--dataset {self.dataset} has its own character vocabulary; --tokenizer_name "
                             f"{self.tokenizer_name!r} goes with --text_file, --dataset_name or --train_file")
        if isinstance(self.validation_split_percentage, bool) or not 0 < self.validation_split_percentage < 100:
            raise ValueError(f"validation_split_percentage must be between 1 and 99, got "
                             f"{self.validation_split_percentage!r}")
        if self.dataset:
            self.vocabulary = {"text8": "text8", "enwik8": "bytes"}[self.dataset]
        check_count("seq_len", self.seq_len)

    def make_vocabulary(self):
        """The tokenizer of `tokenizer_name`, else the character vocabulary."""
        if self.tokenizer_name:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.tokenizer_name)
        return CharVocabulary.bytes() if self.vocabulary == "bytes" else CharVocabulary.text8()

    def dataset_id(self) -> tuple[str, str]:
        """`(dataset id, pretty name)` of the data, for the `model-index` results of model cards."""
        if self.dataset:
            return self.dataset, self.dataset
        if self.dataset_name:
            return self.dataset_name, self.dataset_name
        if self.train_file:
            return "data-file", f"data file {os.path.basename(self.train_file)}"
        if self.text_file:
            return "text-file", f"text file {os.path.basename(self.text_file)}"
        return "hf-multinomial/enwiki-text8-sample", "English Wikipedia sample in text8 format"

    def description(self) -> str:
        """One line for the model card's training-data section."""
        if self.dataset:
            return f"{self.dataset} ({self.data_dir})"
        if self.dataset_name or self.train_file:
            return self.dataset_id()[1]
        if self.text_file:
            return f"text file {os.path.basename(self.text_file)}"
        return "the bundled English Wikipedia sample in text8 format (CC BY-SA)"

    def card_datasets(self) -> Optional[list]:
        """The Hub dataset ids of the card's metadata (None for a local file)."""
        return [self.dataset] if self.dataset else None


def _data_file_type(path: str) -> Optional[str]:
    return DATA_FILE_TYPES.get(os.path.splitext(path)[1].lower())


def _raw_text_splits(args: TextDataArguments):
    """The untokenized text of `args` as a DatasetDict with at least `train` and `validation`: a `datasets` dataset or
    data files (with `validation_split_percentage` of train held out when there is no validation split), or a text
    file (or the bundled sample) cut 90/5/5 by position."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    from .text import split_boundaries

    if args.dataset_name or args.train_file:
        if args.train_file:
            files = {"train": args.train_file, **({"validation": args.validation_file} if args.validation_file else {})}
            kinds = {_data_file_type(path) for path in files.values()}
            if len(kinds) > 1:
                raise ValueError(f"--train_file and --validation_file are of different kinds: {files}")
            for path in files.values():
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"Data file not found: {path!r}")
            kind = kinds.pop()
            # Plain text is read line by line; keep the line breaks, they are characters of the text too.
            raw = load_dataset(kind, data_files=files, **({"keep_linebreaks": True} if kind == "text" else {}))
        elif os.path.isdir(args.dataset_name) and (
                os.path.isfile(os.path.join(args.dataset_name, "dataset_dict.json"))
                or os.path.isfile(os.path.join(args.dataset_name, "dataset_info.json"))):
            raw = load_from_disk(args.dataset_name)
        else:
            raw = load_dataset(args.dataset_name, args.dataset_config_name)
        if isinstance(raw, Dataset):
            raw = DatasetDict(train=raw)
        if "train" not in raw:
            raise ValueError(f"The dataset {args.dataset_name or args.train_file!r} has no train split; it has "
                             f"{sorted(raw)}")
        if "validation" not in raw:
            held_out = raw["train"].train_test_split(test_size=args.validation_split_percentage / 100, shuffle=False)
            raw = DatasetDict({**raw, "train": held_out["train"], "validation": held_out["test"]})
        return raw
    path = args.text_file or bundled_text8_path()
    text = utf8_text(read_text_bytes(path), path)
    return DatasetDict({name: Dataset.from_dict({"text": [text[start:end]]})
                        for name, (start, end) in split_boundaries(len(text)).items()})


def load_text_data(args: TextDataArguments):
    """
    `(DatasetDict, tokenizer)` for `args`: torch-format `input_ids` rows of `seq_len` tokens per split; with a
    tokenizer (`tokenizer_name`), a `datasets` dataset or data files, also `num_characters` per row (the characters
    of the original text its tokens cover). The tokenizer is a `CharVocabulary` or the transformers tokenizer.
    """
    vocabulary = args.make_vocabulary()
    if args.tokenizer_name or args.dataset_name or args.train_file:
        from datasets import DatasetDict

        from .tokenizers import tokenize_into_blocks

        raw = _raw_text_splits(args)
        text_column = args.text_column if (args.dataset_name or args.train_file) else "text"
        data = DatasetDict({name: tokenize_into_blocks(split, vocabulary, args.seq_len, text_column)
                            for name, split in raw.items()})
        return data.with_format("torch"), vocabulary
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
            check_count(name, getattr(self, name))

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


def text_file_sequences(path: str, vocabulary, seq_len: int,
                        max_sequences: Optional[int] = None) -> tuple[torch.LongTensor, int]:
    """
    Non-overlapping sequences of `seq_len` tokens cut from a whole text file (the remainder is dropped), at most
    `max_sequences` of them (None: all), and how many characters of the file they cover. `vocabulary` is a
    [`CharVocabulary`] (a token is a character, or a byte) or any fast transformers tokenizer.

    Returns:
        `(input_ids, num_characters)`: a `torch.LongTensor` of shape `(N, seq_len)` and an `int`.

    Raises:
        ValueError: if `seq_len` or `max_sequences` is not a positive integer, the file is a corrupt archive, not
            UTF-8 or holds a character outside the vocabulary, or it is shorter than one sequence (the message names
            the file, its length and `seq_len`).
    """
    from .tokenizers import characters_per_token

    check_count("seq_len", seq_len)
    check_count("max_sequences", max_sequences, optional=True)
    path = os.fspath(path)
    data = read_text_bytes(path)
    if isinstance(vocabulary, CharVocabulary):
        ids = decode_text(data, vocabulary, path)
        chars = None
        unit = "bytes" if vocabulary.byte_level else "characters"
    else:
        text = utf8_text(data, path)
        encoded = vocabulary(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = np.asarray(encoded["input_ids"], dtype=np.int64)
        chars = characters_per_token(text, encoded["offset_mapping"])
        unit = f"tokens ({len(text)} characters)"
    count = len(ids) // seq_len
    if count == 0:
        raise ValueError(f"{path!r} holds {len(ids)} {unit}, fewer than one sequence of seq_len={seq_len}")
    if max_sequences is not None:
        count = min(count, max_sequences)
    num_characters = count * seq_len if chars is None else int(chars[: count * seq_len].sum())
    return torch.from_numpy(ids[: count * seq_len].reshape(count, seq_len)).long(), num_characters
