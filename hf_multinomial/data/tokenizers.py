# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""
Subword tokenizers for text diffusion: training a byte-level BPE tokenizer offline with the `tokenizers` library, and
cutting tokenized text into blocks that remember how many characters of the original text they cover (so that a
BPE model and a character model are compared in bits per *character* on the same text).

    tokenizer = train_bpe_tokenizer(["train.txt"], vocab_size=4096, output_dir="bpe-4096")   # a transformers tokenizer
    blocks = tokenize_into_blocks(dataset, tokenizer, seq_len=128, text_column="text")      # input_ids, num_characters
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from ..checks import check_count
from .text import check_seq_len

NUM_CHARACTERS = "num_characters"


def train_bpe_tokenizer(files: Sequence[str], vocab_size: int, output_dir: str | None = None,
                        min_frequency: int = 2):
    """
    Train a byte-level BPE tokenizer on `files` (plain or compressed text, see `read_text_bytes`) and return it as a
    transformers `PreTrainedTokenizerFast`, saved with `save_pretrained(output_dir)` when `output_dir` is given (then
    `AutoTokenizer.from_pretrained(output_dir)` loads it offline).

    Byte-level: every text can be encoded (there is no unknown token) and decodes back to itself. The tokenizer has
    no special tokens, so every one of its `len(tokenizer)` ids is text a diffusion model may generate.

    Args:
        files: the training text files.
        vocab_size: the number of tokens, at least the 256 bytes; the result may be smaller when the text has fewer
            distinct merges than asked for.
        output_dir: where to save it (created if missing).
        min_frequency: how often a pair must occur to be merged.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
        raise ValueError(f"vocab_size must be an integer >= 256 (the byte alphabet), got {vocab_size!r}")
    check_count("min_frequency", min_frequency)
    files = list(files)
    if not files:
        raise ValueError("train_bpe_tokenizer needs at least one file")
    from .text import read_text_bytes, utf8_text

    texts = [utf8_text(read_text_bytes(path), path) for path in files]
    if not any(texts):
        raise ValueError(f"The files hold no text: {files}")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, clean_up_tokenization_spaces=False)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
        fast.save_pretrained(output_dir)
    return fast


def characters_per_token(text: str, offsets: Iterable[tuple[int, int]]) -> np.ndarray:
    """How many characters of `text` each token accounts for: the characters from the end of the previous token to
    the end of this one (tokens of one multi-byte character share it: the first takes it), and the last token also
    the rest of the text, so the counts add up to `len(text)` whenever there is a token."""
    ends = np.array([end for _, end in offsets], dtype=np.int64)
    if ends.size == 0:
        return ends
    ends = np.maximum.accumulate(ends)
    counts = np.diff(ends, prepend=0)
    counts[-1] += len(text) - ends[-1]
    return counts


def tokenize_into_blocks(dataset, tokenizer, seq_len: int, text_column: str = "text", num_proc: int | None = None):
    """
    Tokenize the `text_column` of a `datasets.Dataset` with `tokenizer` (no special tokens added), concatenate all
    tokens in order and cut them into blocks of `seq_len` (as transformers' `run_clm.py` does; the final remainder is
    dropped). Returns a Dataset with `input_ids` (`seq_len` ids) and `num_characters` (the characters of the
    original text that the block's tokens cover; over all blocks plus the remainder they add up to the text).

    Raises:
        `ValueError`: `text_column` is not a column (the message lists the columns), or the text gives fewer than
            `seq_len` tokens.
    """
    from datasets import Features, List, Value

    check_seq_len(seq_len)
    if text_column not in dataset.column_names:
        raise ValueError(f"The dataset has no column {text_column!r}; its columns are {dataset.column_names}. "
                         "Name the text with --text_column")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty: 0 rows, so 0 tokens, fewer than one block of "
                         f"seq_len={seq_len}")
    byte_level = getattr(tokenizer, "byte_level", False)
    fast = getattr(tokenizer, "is_fast", False)

    def tokenize(batch):
        texts = [text or "" for text in batch[text_column]]
        if fast:
            encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
            counts = [characters_per_token(text, offsets).tolist()
                      for text, offsets in zip(texts, encoded["offset_mapping"])]
            return {"ids": encoded["input_ids"], "chars": counts}
        # A character vocabulary: one token per character (per byte when byte-level).
        ids = [tokenizer.encode_array(text.encode("utf-8") if byte_level else text).tolist() for text in texts]
        return {"ids": ids, "chars": [[1] * len(i) for i in ids]}

    def group(batch):
        ids = np.fromiter((i for row in batch["ids"] for i in row), dtype=np.int64)
        chars = np.fromiter((c for row in batch["chars"] for c in row), dtype=np.int64)
        count = len(ids) // seq_len
        return {"input_ids": ids[: count * seq_len].reshape(count, seq_len).tolist(),
                NUM_CHARACTERS: chars[: count * seq_len].reshape(count, seq_len).sum(1).tolist()}

    tokenized = dataset.map(tokenize, batched=True, num_proc=num_proc, remove_columns=dataset.column_names,
                            desc="Tokenizing")
    # One group over the whole split: blocks cross document boundaries, and only the final remainder is dropped.
    features = Features({"input_ids": List(Value("int64"), length=seq_len), NUM_CHARACTERS: Value("int64")})
    blocks = tokenized.map(group, batched=True, batch_size=None, remove_columns=tokenized.column_names,
                           features=features, desc=f"Cutting into blocks of {seq_len}")
    if len(blocks) == 0:
        total = sum(len(row) for row in tokenized["ids"])
        raise ValueError(f"The text gives {total} tokens, fewer than one block of seq_len={seq_len}")
    return blocks
