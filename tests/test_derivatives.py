"""Results are written atomically and keyed by their inputs."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from deipp_core.data import derivatives


def test_write_tsv_roundtrip_keeps_values_and_session_labels(tmp_path):
    df = pd.DataFrame({"session": ["01", "02"], "r": [0.123456789012, np.nan], "n": [3, 4]})
    path = tmp_path / "x.tsv"
    derivatives.write_tsv(df, path)
    back = derivatives.read_tsv(path)
    assert list(back["session"]) == ["01", "02"]
    assert back["r"].iloc[0] == pytest.approx(0.123456789012, abs=1e-10)
    assert np.isnan(back["r"].iloc[1])
    assert "n/a" in path.read_text()


def test_failed_write_leaves_neither_partial_nor_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "res.tsv"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        derivatives.atomic_write_bytes(path, b"abc")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_previous_complete_file(tmp_path, monkeypatch):
    path = tmp_path / "res.tsv"
    derivatives.atomic_write_bytes(path, b"old")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        derivatives.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["res.tsv"]


def test_cache_misses_when_the_key_differs(tmp_path):
    cache = derivatives.ResultCache(tmp_path)
    df = pd.DataFrame({"a": [1.0]})
    key = derivatives.hash_key("x", np.arange(3), {"n_boot": 10})
    cache.put("metrics", key, df)
    assert cache.get("metrics", key) is not None
    assert cache.get("metrics", derivatives.hash_key("x", np.arange(3), {"n_boot": 11})) is None
    assert derivatives.hash_key("x", np.arange(3)) != derivatives.hash_key("x", np.arange(4))


def test_derivatives_root_writes_a_bids_description(tmp_path, monkeypatch):
    monkeypatch.delenv("DEIPP_OUTPUT_DIR", raising=False)
    root = derivatives.derivatives_root(tmp_path)
    assert root == tmp_path / "derivatives" / "deipp"
    assert '"DatasetType": "derivative"' in (root / "dataset_description.json").read_text()
