"""A Python port of Matt Mahoney's `wikifil.pl`, the filter that made text8 from enwik9.

The Perl script reads the Wikipedia XML dump in records that end with ">" and applies a
fixed list of regular expressions to each record. This port does the same, on bytes, so
character classes and case-insensitive matches are ASCII-only exactly as in Perl:

* only text between `<text ...>` and `</text>` is kept; a record that mentions `#redirect`
  (any case) switches the output off until the next `<text ` tag;
* xml tags, `<ref>` ... `</ref>` references, `{{templates}}`, `{tables}`, images options,
  category markup and interlanguage links are removed; link anchor text and image captions
  are kept; `&amp;`, `&lt;`, `&gt;` are decoded and other entities become a space;
* upper case becomes lower case, digits are spelled out (`"7"` -> `" seven "`) and every
  other character becomes a space, runs of spaces squeezed to one.

The output therefore holds only `a`-`z` and single spaces. Like text8 it starts with a space
when the first kept record does.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zlib
from typing import BinaryIO, Iterator


# (pattern, replacement, count) in the order of wikifil.pl; count=1 is Perl's s/// without /g.
_CLEANUP = [
    (rb"<.*>", b"", 1),  # remove xml tags
    (rb"&amp;", b"&", 0),  # decode URL encoded chars
    (rb"&lt;", b"<", 0),
    (rb"&gt;", b">", 0),
    (rb"<ref[^<]*</ref>", b"", 0),  # remove references <ref...> ... </ref>
    (rb"<[^>]*>", b"", 0),  # remove xhtml tags
    (rb"\[http:[^\] ]*", b"[", 0),  # remove normal url, keep visible text
    (rb"(?i)\|thumb", b"", 0),  # remove image options, keep caption
    (rb"(?i)\|left", b"", 0),
    (rb"(?i)\|right", b"", 0),
    (rb"(?i)\|[0-9]+px", b"", 0),
    (rb"(?i)\[\[image:[^\[\]]*\|", b"", 0),
    (rb"(?i)\[\[category:([^|\]]*)[^\]]*\]\]", rb"[[\1]]", 0),  # show categories without markup
    (rb"\[\[[a-z\-]*:[^\]]*\]\]", b"", 0),  # remove links to other languages
    (rb"\[\[[^|\]]*\|", b"[[", 0),  # remove link target, keep anchor text
    (rb"\{\{[^}]*\}\}", b"", 0),  # remove {{icons}} and {tables}
    (rb"\{[^}]*\}", b"", 0),
    (rb"\[", b"", 0),  # remove [ and ]
    (rb"\]", b"", 0),
    (rb"&[^;]*;", b" ", 0),  # remove remaining entities
]
_CLEANUP = [(re.compile(pattern), replacement, count) for pattern, replacement, count in _CLEANUP]

_DIGITS = [b"zero", b"one", b"two", b"three", b"four", b"five", b"six", b"seven", b"eight", b"nine"]
_DIGIT_RE = re.compile(rb"[0-9]")
_NOT_LETTERS_RE = re.compile(rb"[^a-z]+")
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")

_TEXT_START = re.compile(rb"<text ")
_TEXT_END = re.compile(rb"</text>")
_REDIRECT = re.compile(rb"(?i)#redirect")


def _filter_record(record: bytes) -> bytes:
    for pattern, replacement, count in _CLEANUP:
        record = pattern.sub(replacement, record, count=count)
    record = b" " + record + b" "
    record = record.translate(_LOWER)
    record = _DIGIT_RE.sub(lambda m: b" " + _DIGITS[m.group()[0] - 48] + b" ", record)
    record = _NOT_LETTERS_RE.sub(b" ", record)  # Perl: tr/a-z/ /cs
    return record[:-1]  # Perl: chop (the record always ends with a space here)


def _records(stream: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Yield the records of `stream` the way Perl does with `$/ = ">"` (">" kept at the end)."""
    pending = b""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        parts = (pending + chunk).split(b">")
        pending = parts.pop()
        for part in parts:
            yield part + b">"
    if pending:
        yield pending


def _open_source(source) -> BinaryIO:
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    if isinstance(source, str) and "<" in source:
        return io.BytesIO(source.encode("utf-8"))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Wikipedia XML file not found: {path!r}")
        if path.endswith(".bz2"):
            return bz2.open(path, "rb")
        if path.endswith(".xz"):
            return lzma.open(path, "rb")
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    if hasattr(source, "read"):
        return source
    raise TypeError(f"source must be a path, a file object or an XML string, got {type(source).__name__}.")


def iter_text8_chunks(source) -> Iterator[str]:
    """Yield the filtered text of `source` piece by piece (see `text8_from_wikipedia_xml`)."""
    stream = _open_source(source)
    close = stream is not source
    try:
        yield from _filtered_chunks(stream)
    except (EOFError, OSError, lzma.LZMAError, zlib.error) as error:  # a truncated or corrupt compressed dump
        if isinstance(source, os.PathLike) or (isinstance(source, str) and "<" not in source):
            raise ValueError(f"Cannot read {os.fspath(source)!r}: it is truncated or corrupt "
                             f"({type(error).__name__}: {error}).") from error
        raise
    finally:
        if close:
            stream.close()


def _filtered_chunks(stream) -> Iterator[str]:
    """The filtered text of the open binary (or text-mode) `stream`, record by record."""
    first = stream.read(0)
    if isinstance(first, str):  # a file object opened in text mode
        stream = io.BytesIO(stream.read().encode("utf-8"))
    in_text = False
    for record in _records(stream):
        if _TEXT_START.search(record):
            in_text = True
        if _REDIRECT.search(record):
            in_text = False
        if in_text:
            if _TEXT_END.search(record):
                in_text = False
            filtered = _filter_record(record)
            if filtered:
                yield filtered.decode("ascii")


def text8_from_wikipedia_xml(source) -> str:
    """Filter a Wikipedia XML dump to text8-style text (lowercase `a`-`z` and single spaces).

    Args:
        source: The dump: a path to a `.xml` file (or `.xml.bz2`, `.xml.xz`, `.xml.gz`), an
            open file object (binary or text), or the XML itself as `str`/`bytes` (a `str` is
            taken as XML when it contains "<", otherwise as a path).

    Returns:
        The filtered text, as produced by Matt Mahoney's `wikifil.pl`.
    """
    return "".join(iter_text8_chunks(source))
