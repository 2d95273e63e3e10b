"""The prediction analysis: its on-disk cache of the nested cross-validation."""

from __future__ import annotations

import dataclasses

import numpy as np

from deipp_core.analyses.prediction import load_cv, save_cv
from deipp_core.model import nested_loso


def _small_cv(rng):
    sessions = np.repeat([f"{s:02d}" for s in range(1, 6)], 12).astype(object)
    X = rng.normal(size=(60, 40))
    y = X[:, :3].sum(axis=1) + rng.normal(scale=0.5, size=60)
    return nested_loso(X, y, sessions, X_eval=X[:10], groups_eval=sessions[:10])


def test_saved_cross_validation_loads_back_identically(tmp_path, rng):
    cv = _small_cv(rng)
    path = tmp_path / "sub-01_desc-nestedloso.npz"
    save_cv(cv, path)
    back = load_cv(path)
    for f in dataclasses.fields(cv):
        if f.name == "splits":
            continue
        a, b = getattr(cv, f.name), getattr(back, f.name)
        if a is None:
            assert b is None
        elif np.asarray(a).dtype.kind in "fc":
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f.name)
        else:
            assert [str(v) for v in np.ravel(a)] == [str(v) for v in np.ravel(b)], f.name


def test_cache_file_needs_no_pickle(tmp_path, rng):
    path = tmp_path / "cv.npz"
    save_cv(_small_cv(rng), path)
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
