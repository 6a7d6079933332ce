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


@pytest.fixture(autouse=True, scope="session")
def private_cache_home(tmp_path_factory):
    """Folder indexes (selfsup.data.folder_scan) go to a cache of the test session's own, not the
    user's ~/.cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
    yield
    patch.undo()
