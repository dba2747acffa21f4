"""Shared test settings."""

import signal

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests use tiny tensors: one intra-op thread is fastest, and far faster when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def interruptible():
    """``preexec_fn`` for a child process that must receive Ctrl-C: a shell that starts pytest in
    the background (``cmd &``) leaves SIGINT ignored, and children inherit that."""
    return _default_sigint
