"""Datasets and vocabularies for categorical (text) data."""

from .text import (
    bundled_text8_path,
    load_bundled_text8,
    load_enwik8,
    load_text8,
    load_text_file,
    split_boundaries,
)
from .text8_filter import text8_from_wikipedia_xml
from .vocabulary import CharVocabulary


__all__ = [
    "CharVocabulary",
    "text8_from_wikipedia_xml",
    "load_text8",
    "load_enwik8",
    "load_text_file",
    "bundled_text8_path",
    "load_bundled_text8",
    "split_boundaries",
]
