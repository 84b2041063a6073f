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
