# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""Where prepared datasets are cached, and how they are written there without ever leaving a half-written copy."""

import os
import shutil
import tempfile

from datasets import DatasetDict


def default_cache_dir() -> str:
    """The folder where prepared datasets are kept: `<HF datasets cache>/hf_multinomial`."""
    from datasets import config

    return os.path.join(str(config.HF_DATASETS_CACHE), "hf_multinomial")


def save_splits_atomically(splits: DatasetDict, cache_dir: str, cached: str) -> None:
    """`splits.save_to_disk(cached)`, through a temporary folder in `cache_dir` renamed into place at the end."""
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir, prefix=".tmp-")
    try:
        # An empty split (e.g. `validation` when num_train >= the number of train maps) must be written as one
        # empty shard: with zero shards it cannot be loaded back.
        splits.save_to_disk(tmp, num_shards={name: 1 for name, split in splits.items() if len(split) == 0})
        try:
            os.replace(tmp, cached)
        except OSError:  # another process filled the cache first
            if not os.path.isdir(cached):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
