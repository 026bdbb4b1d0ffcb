"""Datasets and vocabularies for categorical data: text (text8, enwik8, any text file) and segmentation maps."""

from .cityscapes import (
    CITYSCAPES_CATEGORY_COLORS,
    CITYSCAPES_CATEGORY_NAMES,
    CITYSCAPES_LABEL_TO_CATEGORY,
    cityscapes_categories,
    load_cityscapes,
    nearest_resize,
)
from .eight_gaussians import eight_gaussians_entropy, eight_gaussians_pmf, sample_eight_gaussians
from .synthetic_maps import random_rectangle_maps, synthetic_segmentation_dataset, write_synthetic_gtfine
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
    "load_cityscapes",
    "nearest_resize",
    "cityscapes_categories",
    "CITYSCAPES_CATEGORY_NAMES",
    "CITYSCAPES_CATEGORY_COLORS",
    "CITYSCAPES_LABEL_TO_CATEGORY",
    "eight_gaussians_entropy",
    "eight_gaussians_pmf",
    "sample_eight_gaussians",
    "random_rectangle_maps",
    "synthetic_segmentation_dataset",
    "write_synthetic_gtfine",
]
