"""Shared fixtures: a headless matplotlib, a seeded RNG, and a session-wide quick twin and build folder."""

from __future__ import annotations

import os

import numpy as np
import pytest


def pytest_configure(config):
    # In-process only: setting MPLBACKEND in the environment would be inherited by the notebook
    # kernels and remove every figure from the executed chapters.
    import matplotlib

    matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture(scope="session")
def deipp_data_dir(tmp_path_factory):
    """A fresh DEIPP_DATA_DIR for the whole test session (the embedded twins are generated there)."""
    path = tmp_path_factory.mktemp("deipp-data")
    old = os.environ.get("DEIPP_DATA_DIR")
    os.environ["DEIPP_DATA_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DEIPP_DATA_DIR", None)
    else:
        os.environ["DEIPP_DATA_DIR"] = old


@pytest.fixture(scope="session")
def quick_twin_root(deipp_data_dir):
    """Root of the quick-scale digital twin (seed 0), generated once per test session."""
    from deipp_core.data import ensure_twin

    return ensure_twin("quick", seed=0)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    """One build folder shared by the notebook smoke runs and the browser test (shared cache)."""
    return tmp_path_factory.mktemp("book") / "_build"
