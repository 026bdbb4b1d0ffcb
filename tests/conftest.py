import lzma
import os

import pytest
import torch

# Nothing in the tests reaches the Hub: everything is built in local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def one_thread():
    """The tests' models are tiny: a second intra-op thread buys nothing, and while other jobs share the 2 cores,
    OpenMP threads waiting for each other made some tests 15 times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """The first 60,000 characters of the bundled Wikipedia sample (1,687 training rows of 32 characters); a test
    module may define its own."""
    from hf_multinomial.data.text import bundled_text8_path

    path = tmp_path_factory.mktemp("text") / "short.txt"
    with lzma.open(bundled_text8_path(), "rt") as f:
        path.write_text(f.read(60_000))
    return path
