"""Fixtures of the backend tests."""

import pytest


@pytest.fixture
def torch_single_thread():
    """Run a torch test on one thread: the CI machine is shared, and oversubscribed threads crawl."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def numba_cache(tmp_path_factory):
    """One temporary kernel cache for the numba tests of this session: each structure compiles once."""
    path = tmp_path_factory.getbasetemp() / "numba-kernels"
    path.mkdir(exist_ok=True)
    return path
