"""Fixtures for the lsmodel unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run each test on one intra-op thread, then restore the setting.

    These tensors are tiny, so a second thread gains nothing (13 s either way on an idle 2-core
    machine), while on a busy one OpenMP threads spin waiting for each other: the same tests
    took 110-300 s with two threads at load 6.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
