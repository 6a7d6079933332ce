import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's in-process runs: on a shared 2-core machine, thread
    oversubscription makes tiny convolutions and BatchNorms ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
