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
