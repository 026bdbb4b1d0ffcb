"""Character vocabularies: map text to class ids and back.

A vocabulary is an ordered list of symbols; a symbol's id is its index, so
`len(vocabulary)` is the number of classes a model sees. It is a transformers tokenizer
(`PreTrainedTokenizer`), saved as `vocabulary.json` (plus `tokenizer_config.json`) in a
pipeline's `vocabulary/` folder, so that diffusers' `from_pretrained` restores it and samples
can be decoded.

Two kinds exist:

* character-level (`CharVocabulary(symbols)`, `CharVocabulary.text8()`): every symbol is
  one unicode character and text is encoded character by character.
* byte-level (`CharVocabulary.bytes()`, used for enwik8): the 256 byte values. `encode`
  takes `bytes` (or a `str`, which is UTF-8 encoded first), `decode` returns a `str`
  decoded as UTF-8 with `errors="replace"` (a sampled byte sequence need not be valid
  UTF-8) and `decode_bytes` returns the raw `bytes`.
"""

from __future__ import annotations

import json
import os
import string
from typing import Any, Iterable

import numpy as np
from transformers import PreTrainedTokenizer


VOCABULARY_NAME = "vocabulary.json"
_FORMAT_VERSION = 1


class CharVocabulary(PreTrainedTokenizer):
    """An ordered set of symbols; the id of a symbol is its position in `symbols`. It has no special tokens.

    Args:
        symbols: The symbols in id order. Each must be a string of exactly one character and
            appear only once.
        byte_level: If True the vocabulary works on bytes: it needs the 256 symbols
            `chr(0) ... chr(255)` (use `CharVocabulary.bytes()`), encodes `bytes` and decodes
            to UTF-8 text. Defaults to False.
        vocab_file: Path of a `vocabulary.json` to read `symbols` and `byte_level` from instead
            (what `from_pretrained` passes).
    """

    vocab_files_names = {"vocab_file": VOCABULARY_NAME}
    model_input_names = ["input_ids"]

    def __init__(self, symbols: Iterable[str] | None = None, byte_level: bool = False, vocab_file: str | None = None, **kwargs):
        if vocab_file is not None:
            config = _read_vocabulary_file(vocab_file)
            symbols, byte_level = config["symbols"], bool(config.get("byte_level", False))
        if symbols is None:
            raise ValueError("CharVocabulary needs `symbols` or a `vocab_file`.")
        symbols = list(symbols)
        if not symbols:
            raise ValueError("CharVocabulary needs at least one symbol, got an empty list.")
        for i, symbol in enumerate(symbols):
            if not isinstance(symbol, str) or len(symbol) != 1:
                raise ValueError(f"Every symbol must be a single character; symbol {i} is {symbol!r}.")
        index = {}
        for i, symbol in enumerate(symbols):
            if symbol in index:
                raise ValueError(f"Symbol {symbol!r} appears twice (ids {index[symbol]} and {i}).")
            index[symbol] = i
        if byte_level and symbols != [chr(i) for i in range(256)]:
            raise ValueError("A byte-level vocabulary must have the 256 symbols chr(0) ... chr(255) in order.")

        self.symbols = symbols
        self.byte_level = byte_level
        self._index = index
        # Lookup table from code point to id (-1 = not in the vocabulary) for fast array encoding.
        self._table = np.full(max(map(ord, symbols)) + 1, -1, dtype=np.int64)
        self._table[[ord(s) for s in symbols]] = np.arange(len(symbols))
        super().__init__(**kwargs)

    # ----------------------------------------------------------------- factories
    @classmethod
    def text8(cls) -> CharVocabulary:
        """The 27 symbols of text8: space (id 0) then `a` ... `z` (ids 1 ... 26)."""
        return cls([" "] + list(string.ascii_lowercase))

    @classmethod
    def bytes(cls) -> CharVocabulary:
        """The 256 byte values (enwik8); id = byte value."""
        return cls([chr(i) for i in range(256)], byte_level=True)

    # ---------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def num_classes(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CharVocabulary):
            return NotImplemented
        return self.symbols == other.symbols and self.byte_level == other.byte_level

    def __hash__(self) -> int:
        return hash((tuple(self.symbols), self.byte_level))

    def __repr__(self) -> str:
        if self.byte_level:
            return "CharVocabulary.bytes()"
        return f"CharVocabulary(num_classes={len(self)}, symbols={''.join(self.symbols)!r})"

    # ------------------------------------------------------------ encode/decode
    def encode(self, text: str | bytes, **kwargs) -> list[int]:
        """Return the ids of the characters (or bytes, for a byte-level vocabulary) of `text`.

        With keyword arguments (padding, truncation, return_tensors, ...) this is the
        transformers tokenizer's `encode`.

        Raises:
            ValueError: if a character is not in the vocabulary; the message names the
                character and its position in `text`.
        """
        if kwargs:
            return super().encode(text, **kwargs)
        return self.encode_array(text).tolist()

    # The hooks transformers' tokenizer machinery calls (`vocabulary(text)`, `tokenize`, ...).
    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._index)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return [self.symbols[i] for i in self.encode_array(text).tolist()]

    def _convert_token_to_id(self, token: str) -> int:
        if token not in self._index:
            raise ValueError(f"Token {token!r} is not in the vocabulary.")
        return self._index[token]

    def _convert_id_to_token(self, index: int) -> str:
        return self.symbols[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        if self.byte_level:
            return bytes(ord(token) for token in tokens).decode("utf-8", errors="replace")
        return "".join(tokens)

    def encode_array(self, text: str | bytes) -> np.ndarray:
        """Like `encode` but returns a 1-D numpy array (int64); fast for long texts."""
        if self.byte_level:
            if isinstance(text, str):
                text = text.encode("utf-8")
            if not isinstance(text, (bytes, bytearray, memoryview)):
                raise TypeError(f"A byte-level vocabulary encodes bytes or str, got {type(text).__name__}.")
            return np.frombuffer(text, dtype=np.uint8).astype(np.int64)

        if not isinstance(text, str):
            raise TypeError(f"CharVocabulary.encode expects a str, got {type(text).__name__}.")
        if text.isascii():
            codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        else:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.full(len(codes), -1, dtype=np.int64)
        known = codes < len(self._table)
        ids[known] = self._table[codes[known]]
        bad = np.flatnonzero(ids < 0)
        if len(bad):
            position = int(bad[0])
            raise ValueError(
                f"Character {text[position]!r} at position {position} is not in the vocabulary "
                f"({len(self)} symbols: {''.join(self.symbols)[:64]!r})."
            )
        return ids

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs) -> str | list[str]:
        """Turn ids back into text.

        Args:
            token_ids: A sequence of ids: a list, numpy array or torch tensor. A 2-D input (a batch)
                returns a list with one string per row.
            skip_special_tokens, kwargs: accepted for compatibility with transformers; a
                character vocabulary has no special tokens and no spaces to clean up.

        Returns:
            The text. A byte-level vocabulary decodes the bytes as UTF-8 with
            `errors="replace"`.
        """
        if isinstance(token_ids, (list, tuple)) and token_ids and not np.isscalar(token_ids[0]):
            return [self.decode(row) for row in token_ids]  # a batch, possibly of unequal lengths
        ids = _as_numpy(token_ids)
        if ids.ndim == 2:
            return [self.decode(row) for row in ids]
        if self.byte_level:
            return self.decode_bytes(ids).decode("utf-8", errors="replace")
        self._check_ids(ids)
        return "".join(self.symbols[i] for i in ids.tolist())

    def decode_bytes(self, ids: Any) -> bytes | list[bytes]:
        """Byte-level vocabularies: turn ids into raw `bytes` (a list of them for 2-D input)."""
        if not self.byte_level:
            raise ValueError("decode_bytes is only defined for a byte-level vocabulary; use decode.")
        ids = _as_numpy(ids)
        if ids.ndim == 2:
            return [self.decode_bytes(row) for row in ids]
        self._check_ids(ids)
        return ids.astype(np.uint8).tobytes()

    def _check_ids(self, ids: np.ndarray) -> None:
        if ids.ndim != 1:
            raise ValueError(f"Expected 1-D or 2-D ids, got shape {tuple(ids.shape)}.")
        if not np.issubdtype(ids.dtype, np.integer) and ids.size:
            raise TypeError(f"Ids must be integers, got dtype {ids.dtype}.")
        bad = np.flatnonzero((ids < 0) | (ids >= len(self)))
        if len(bad):
            raise ValueError(
                f"Id {int(ids[bad[0]])} at position {int(bad[0])} is outside the vocabulary "
                f"(valid ids are 0 ... {len(self) - 1})."
            )

    # ----------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        return {
            "type": "CharVocabulary",
            "format_version": _FORMAT_VERSION,
            "byte_level": self.byte_level,
            "num_classes": len(self),
            "symbols": self.symbols,
        }

    @classmethod
    def from_dict(cls, config: dict) -> CharVocabulary:
        if not isinstance(config, dict) or "symbols" not in config:
            raise ValueError("A vocabulary dict needs a 'symbols' list.")
        vocabulary = cls(config["symbols"], byte_level=bool(config.get("byte_level", False)))
        if "num_classes" in config and config["num_classes"] != len(vocabulary):
            raise ValueError(f"num_classes is {config['num_classes']} but there are {len(vocabulary)} symbols.")
        return vocabulary

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        """Write `vocabulary.json` (called by `save_pretrained`, which also writes `tokenizer_config.json`)."""
        os.makedirs(save_directory, exist_ok=True)
        name = (filename_prefix + "-" if filename_prefix else "") + VOCABULARY_NAME
        path = os.path.join(save_directory, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=True)
            f.write("\n")
        return (path,)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *args, subfolder: str | None = None, **kwargs) -> CharVocabulary:
        """Load a vocabulary saved with `save_pretrained`.

        Args:
            path: A directory holding `vocabulary.json`, the path of that JSON file itself, or
                a Hub repository id.
            subfolder: Optional folder inside `path` to look in (e.g. a pipeline's component
                folder).
        """
        path = os.fspath(path)
        local = os.path.join(path, subfolder) if subfolder else path
        if os.path.isfile(local):
            return cls.from_dict(_read_vocabulary_file(local))
        if os.path.isdir(local):
            file = os.path.join(local, VOCABULARY_NAME)
            if not os.path.isfile(file):
                raise FileNotFoundError(f"No vocabulary file found at {file!r}.")
            _read_vocabulary_file(file)  # a clear error for a corrupt file, before transformers reads it
            return super().from_pretrained(local, *args, **kwargs)
        if os.path.isabs(path) or path.startswith("."):
            raise FileNotFoundError(f"No vocabulary file found at {local!r}.")
        return super().from_pretrained(path, *args, subfolder=subfolder, **kwargs)


def _read_vocabulary_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config, dict) or not isinstance(config.get("symbols"), list):
            raise ValueError("it has no 'symbols' list")
        return config
    except FileNotFoundError:
        raise FileNotFoundError(f"No vocabulary file found at {path!r}.") from None
    except (ValueError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"Could not read the vocabulary file {path!r}: {error}") from error


def _as_numpy(ids: Any) -> np.ndarray:
    if hasattr(ids, "detach"):  # torch tensor, possibly on an accelerator
        ids = ids.detach().cpu().numpy()
    array = np.asarray(ids)
    if array.ndim == 0:
        raise ValueError(f"Expected a sequence of ids, got the scalar {array.item()!r}.")
    if array.size == 0:
        return array.astype(np.int64).reshape(array.shape)
    return array
