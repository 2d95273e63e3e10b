"""The on-disk cache of parsed runs (reader) and feature tables: exact, keyed, atomic, contained."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deipp_core import features as features_module
from deipp_core.data import bids, derivatives
from deipp_core.data.bids import read_dataset
from deipp_core.data.derivatives import ArrayCache, cache_enabled
from deipp_core.data.twin import TwinConfig, generate_twin
from deipp_core.features import cached_features, participant_features
from deipp_core.ratings import RatingParams

TINY = TwinConfig.quick(n_sessions=(2, 3), n_parcels=40, module_size=3)


@pytest.fixture(scope="module")
def twin_source(tmp_path_factory):
    return generate_twin(tmp_path_factory.mktemp("cache") / "twin", TINY, seed=3)


@pytest.fixture
def twin(twin_source, tmp_path):
    """A private copy of the tiny twin (the tests write caches into it)."""
    root = tmp_path / "twin"
    shutil.copytree(twin_source, root)
    return root


@pytest.fixture(autouse=True)
def _default_cache_settings(monkeypatch):
    monkeypatch.delenv("DEIPP_OUTPUT_DIR", raising=False)
    monkeypatch.delenv(derivatives.CACHE_ENV, raising=False)


def _cache_dir(root: Path) -> Path:
    return root / "derivatives" / "deipp" / "cache"


def _count(monkeypatch, module, name) -> list:
    calls = []
    original = getattr(module, name)

    def counting(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def _assert_same_dataset(ref, other):
    assert sorted(ref.participants) == sorted(other.participants)
    for label, p in ref.participants.items():
        q = other[label]
        pd.testing.assert_frame_equal(p.atlas, q.atlas, check_exact=True)
        assert len(p.runs) == len(q.runs)
        for r, s in zip(p.runs, q.runs):
            assert (r.session, r.task, r.run, r.tr, r.source) == (s.session, s.task, s.run, s.tr, s.source)
            assert r.timeseries.dtype == s.timeseries.dtype == np.float64
            assert np.array_equal(r.timeseries, s.timeseries)
            pd.testing.assert_frame_equal(r.confounds, s.confounds, check_exact=True)
            if r.rating is None:
                assert s.rating is None
            else:
                pd.testing.assert_frame_equal(r.rating, s.rating, check_exact=True)


def _assert_same_features(ref, other):
    assert other.participant == ref.participant and other.params == ref.params
    assert other.X.dtype == np.float64 and np.array_equal(ref.X, other.X)
    pd.testing.assert_frame_equal(ref.rows, other.rows, check_exact=True)
    assert ref.parcels.dtype == other.parcels.dtype and np.array_equal(ref.parcels, other.parcels)
    assert list(ref.frames) == list(other.frames)
    for key, rf in ref.frames.items():
        of = other.frames[key]
        for name in ("frames", "rating", "rating_tr"):
            a, b = getattr(rf, name), getattr(of, name)
            assert a.dtype == b.dtype and np.array_equal(a, b)
        for family in ("rbin", "tbin"):
            a, b = getattr(rf, family), getattr(of, family)
            assert list(a) == list(b)
            assert all(a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n]) for n in a)
    assert list(ref.rest_frames) == list(other.rest_frames)
    for session, frames in ref.rest_frames.items():
        assert frames.dtype == other.rest_frames[session].dtype
        assert np.array_equal(frames, other.rest_frames[session])


# --------------------------------------------------------------------------------------------------
# Exactness and use
# --------------------------------------------------------------------------------------------------


def test_cached_read_equals_the_uncached_read_exactly_and_skips_parsing(twin, monkeypatch):
    reference = read_dataset(twin, use_cache=False)
    assert not _cache_dir(twin).exists()  # use_cache=False writes nothing
    cold = read_dataset(twin)
    n_runs = sum(len(p.runs) for p in reference.participants.values())
    assert len(list(_cache_dir(twin).rglob("*_desc-parsed_key-*.npy"))) == n_runs
    assert len(list(_cache_dir(twin).rglob("*_desc-parsedtables_key-*.npz"))) == n_runs

    parsed = _count(monkeypatch, bids, "read_parcel_timeseries")
    confounds = _count(monkeypatch, bids, "read_confounds")
    ratings = _count(monkeypatch, bids, "read_rating")
    warm = read_dataset(twin)
    assert parsed == confounds == ratings == []  # every run came from the cache
    _assert_same_dataset(reference, cold)
    _assert_same_dataset(reference, warm)
    ts = warm["01"].runs[0].timeseries
    assert not ts.flags.writeable  # memory-mapped read-only: the cache cannot be altered through it


def test_cached_features_equal_participant_features_exactly(twin, monkeypatch):
    dataset = read_dataset(twin)
    for label in sorted(dataset.participants):
        reference = participant_features(dataset[label])
        cold = cached_features(dataset, label)
        with monkeypatch.context() as m:
            computed = _count(m, features_module, "participant_features")
            warm = cached_features(dataset, label)
        assert computed == []  # read, not recomputed
        _assert_same_features(reference, cold)
        _assert_same_features(reference, warm)
        assert not warm.X.flags.writeable
        X_train, rows_train = warm.select("rbin10")
        X_ref, rows_ref = reference.select("rbin10")
        assert np.array_equal(X_train, X_ref)
        pd.testing.assert_frame_equal(rows_train, rows_ref, check_exact=True)
    files = sorted(p.name for p in (_cache_dir(twin) / "sub-01").glob("sub-01_desc-feature*"))
    assert [Path(f).suffix for f in files] == [".npz", ".npy"]  # featurerows, features: one key


def test_feature_key_follows_the_parameters(twin, monkeypatch):
    dataset = read_dataset(twin)
    computed = _count(monkeypatch, features_module, "participant_features")
    default = cached_features(dataset, "01")
    lag0 = cached_features(dataset, "01", RatingParams(lag_tr=0))
    no_rest = cached_features(dataset, "01", include_rest=False, kinds=("rbin10",))
    assert len(computed) == 3
    assert not np.array_equal(default.X[:10], lag0.X[:10])
    assert set(no_rest.rows["kind"]) == {"rbin10", "run"}
    # Each setting has its own entry, so they do not evict each other.
    assert len(list((_cache_dir(twin) / "sub-01").glob("sub-01_desc-features*_key-*.npy"))) == 3
    _assert_same_features(participant_features(dataset["01"], include_rest=False, kinds=("rbin10",)),
                          cached_features(dataset, "01", include_rest=False, kinds=("rbin10",)))
    _assert_same_features(participant_features(dataset["01"], RatingParams(lag_tr=0)),
                          cached_features(dataset, "01", RatingParams(lag_tr=0)))
    _assert_same_features(participant_features(dataset["01"]), cached_features(dataset, "01"))
    assert len(computed) == 3  # the three cached calls were read (the references do not count)


def test_predict_participant_uses_the_feature_cache(twin, monkeypatch):
    from deipp_core.analyses import prediction

    dataset = read_dataset(twin, participants="02")  # three sessions, the fewest nested LOSO takes
    first = prediction.predict_participant(dataset, "02", profile="quick", seed=0)
    computed = _count(monkeypatch, features_module, "participant_features")
    again = prediction.predict_participant(dataset, "02", profile="quick", seed=0)
    assert computed == []
    pd.testing.assert_frame_equal(first.metrics, again.metrics, check_exact=True)
    assert np.array_equal(first.features.X, again.features.X)


# --------------------------------------------------------------------------------------------------
# Invalidation
# --------------------------------------------------------------------------------------------------


def _rating_ts(root: Path, session: str = "01", run: int = 1) -> Path:
    return next(root.rglob(f"sub-01_ses-{session}_task-rating_run-{run}_atlas-*_timeseries.tsv.gz"))


def test_a_touched_source_file_is_parsed_again(twin, monkeypatch):
    read_dataset(twin)
    path = _rating_ts(twin)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    parsed = _count(monkeypatch, bids, "read_parcel_timeseries")
    read_dataset(twin)
    assert parsed == [path]  # only the touched run
    # The stale entry of that run was replaced, not kept beside the new one.
    name = path.name.split("_atlas-")[0]
    assert len(list(_cache_dir(twin).rglob(f"{name}_desc-parsed_key-*.npy"))) == 1
    assert len(list(_cache_dir(twin).rglob(f"{name}_desc-parsedtables_key-*.npz"))) == 1


def test_rewritten_inputs_give_the_new_values_and_new_features(twin):
    dataset = read_dataset(twin)
    before = cached_features(dataset, "01")
    X_before = np.array(before.X)
    path = _rating_ts(twin, "02", 2)
    table = pd.read_csv(path, sep="\t")
    table.iloc[:, :] = table.to_numpy() * 2.0 + 1.0
    with gzip.open(path, "wt") as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    reread = read_dataset(twin)
    expected = read_dataset(twin, use_cache=False)
    _assert_same_dataset(expected, reread)

    def run_02_2(ds):
        return next(r for r in ds["01"].runs if (r.session, r.run) == ("02", 2)).timeseries

    assert not np.allclose(run_02_2(reread), run_02_2(dataset))  # the new values, not the stale entry
    after = cached_features(reread, "01")
    _assert_same_features(participant_features(expected["01"]), after)
    assert not np.array_equal(after.X, X_before)  # the new data's features, not the stale table
    # The new key replaced the stale entry (one version per setting).
    assert len(list((_cache_dir(twin) / "sub-01").glob("sub-01_desc-features_key-*.npy"))) == 1
    assert len(list((_cache_dir(twin) / "sub-01").glob("sub-01_desc-featurerows_key-*.npz"))) == 1


def test_a_changed_atlas_header_is_still_checked(twin):
    read_dataset(twin)  # caches every run
    atlas = next((twin / "derivatives" / "deipp-twin").glob("atlas-*_dseg.tsv"))
    table = pd.read_csv(atlas, sep="\t", dtype={"name": str})
    table.loc[0, "name"] = "renamed"
    table.to_csv(atlas, sep="\t", index=False)
    with pytest.raises(bids.DataFormatError, match="column 1 is .* but the atlas lists 'renamed' there"):
        read_dataset(twin)


# --------------------------------------------------------------------------------------------------
# Interrupted writes, damaged files, containment, switches
# --------------------------------------------------------------------------------------------------


def test_an_interrupted_cache_write_leaves_nothing_a_later_run_reads(twin, monkeypatch):
    real_save = np.save

    def half_then_die(fh, array, **kwargs):
        buffer = io.BytesIO()
        real_save(buffer, array, **kwargs)
        fh.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise KeyboardInterrupt("killed mid-write")

    with monkeypatch.context() as m:
        m.setattr(np, "save", half_then_die)
        with pytest.raises(KeyboardInterrupt):
            read_dataset(twin)
        with pytest.raises(KeyboardInterrupt):
            cached_features(read_dataset(twin, use_cache=False), "01")
    leftovers = [p for p in _cache_dir(twin).rglob("*") if p.is_file()]
    assert leftovers == []  # no entry, and the temporary file was removed

    parsed = _count(monkeypatch, bids, "read_parcel_timeseries")
    dataset = read_dataset(twin)
    assert len(parsed) == sum(len(p.runs) for p in dataset.participants.values())
    _assert_same_dataset(read_dataset(twin, use_cache=False), dataset)


def test_truncated_cache_files_are_not_read(twin, monkeypatch):
    dataset = read_dataset(twin)
    cached_features(dataset, "01")
    ts_file = next(_cache_dir(twin).rglob("sub-01_ses-01_task-rating_run-1_desc-parsed_key-*.npy"))
    tables = next(_cache_dir(twin).rglob("sub-01_ses-01_task-rating_run-2_desc-parsedtables_key-*.npz"))
    x_file = next(_cache_dir(twin).rglob("sub-01_desc-features_key-*.npy"))
    for path in (ts_file, tables, x_file):  # as if written in place and cut short
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    parsed = _count(monkeypatch, bids, "read_parcel_timeseries")
    computed = _count(monkeypatch, features_module, "participant_features")
    again = read_dataset(twin)
    assert sorted(p.name.split("_atlas-")[0] for p in parsed) == [
        "sub-01_ses-01_task-rating_run-1", "sub-01_ses-01_task-rating_run-2"]
    _assert_same_dataset(read_dataset(twin, use_cache=False), again)
    feats = cached_features(again, "01")
    assert len(computed) == 1
    _assert_same_features(participant_features(again["01"]), feats)
    # The damaged files were rewritten complete.
    assert np.load(ts_file).shape == again["01"].runs[0].timeseries.shape
    assert np.load(x_file).shape == feats.X.shape


def _is_write_mode(mode) -> bool:
    return any(c in str(mode) for c in "wax+")


def test_the_cache_writes_only_under_derivatives_deipp(twin, monkeypatch):
    root = twin.resolve()
    raw = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    writes: list[Path] = []

    def record(path):
        if isinstance(path, (str, os.PathLike)):
            writes.append(Path(os.path.abspath(os.fspath(path))))

    def wrap_open(original):
        def patched(file, mode="r", *args, **kwargs):
            if _is_write_mode(mode):
                record(file)
            return original(file, mode, *args, **kwargs)
        return patched

    os_open = os.open

    def patched_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            record(path)
        return os_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", wrap_open(builtins.open))
        m.setattr(io, "open", wrap_open(io.open))
        m.setattr(gzip, "open", wrap_open(gzip.open))
        m.setattr(os, "open", patched_os_open)
        dataset = read_dataset(root)
        for label in sorted(dataset.participants):
            cached_features(dataset, label)

    ours = root / "derivatives" / "deipp"
    assert any(p.suffix == ".tmp" for p in writes)  # the patch saw the cache being written
    outside = sorted({str(p) for p in writes if ours not in p.parents})
    assert not outside, f"opened for writing outside derivatives/deipp: {outside}"
    assert {p.parent for p in writes} - {ours} <= set(_cache_dir(root).rglob("*")) | {_cache_dir(root)}
    for path, digest in raw.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} changed"


def test_the_cache_can_be_switched_off(twin, monkeypatch):
    monkeypatch.setenv(derivatives.CACHE_ENV, "0")
    assert not cache_enabled() and cache_enabled(True)
    dataset = read_dataset(twin)
    cached_features(dataset, "01")
    assert not (twin / "derivatives" / "deipp").exists()
    monkeypatch.setenv(derivatives.CACHE_ENV, "1")
    assert cache_enabled() and not cache_enabled(False)
    cached_features(read_dataset(twin, use_cache=False), "01", use_cache=False)
    assert not (twin / "derivatives" / "deipp").exists()


def test_an_unwritable_cache_folder_falls_back_to_computing(twin, monkeypatch, caplog):
    def refuse(root):
        raise PermissionError(f"{root} is read-only")

    monkeypatch.setattr(derivatives, "derivatives_root", refuse)
    dataset = read_dataset(twin)
    feats = cached_features(dataset, "01")
    assert "no array cache" in caplog.text
    assert not (twin / "derivatives" / "deipp").exists()
    _assert_same_features(participant_features(read_dataset(twin, use_cache=False)["01"]), feats)


def test_output_dir_redirects_the_cache(twin, tmp_path, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("DEIPP_OUTPUT_DIR", str(out))
    cached_features(read_dataset(twin), "01")
    assert not (twin / "derivatives" / "deipp").exists()
    assert list((out / twin.name / "derivatives" / "deipp" / "cache" / "sub-01").glob("*_desc-features_key-*.npy"))


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------


def _entries(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(_cache_dir(root).rglob("*")) if p.is_file()}


def test_the_cache_is_deterministic_whatever_n_jobs(twin_source, tmp_path):
    roots = []
    for i, n_jobs in enumerate((1, 2)):
        root = tmp_path / f"copy{i}" / "twin"
        shutil.copytree(twin_source, root)
        dataset = read_dataset(root, n_jobs=n_jobs)
        for label in sorted(dataset.participants):
            cached_features(dataset, label, n_jobs=n_jobs)
        roots.append(root)
    first, second = (_entries(r) for r in roots)
    assert first and first == second  # same names (keys) and the same bytes in every file


# --------------------------------------------------------------------------------------------------
# ArrayCache
# --------------------------------------------------------------------------------------------------


def test_array_cache_round_trip_prunes_other_keys_and_old_temporaries(tmp_path):
    cache = ArrayCache(tmp_path)
    a = np.arange(12.0).reshape(3, 4)
    cache.save("x", "k1", a)
    cache.save_npz("y", "k1", a=a, b=np.array(["01", "02"]))
    assert np.array_equal(cache.load("x", "k1"), a)
    mapped = cache.load("x", "k1", mmap=True)
    assert type(mapped) is np.ndarray and not mapped.flags.writeable and np.array_equal(mapped, a)
    assert cache.load("x", "k2") is None and cache.load_npz("y", "k2") is None
    loaded = cache.load_npz("y", "k1")
    assert np.array_equal(loaded["a"], a) and loaded["b"].tolist() == ["01", "02"]

    fresh_tmp = tmp_path / ".x_key-k9.npy.abc.tmp"
    old_tmp = tmp_path / ".x_key-k8.npy.def.tmp"
    for path in (fresh_tmp, old_tmp):
        path.write_bytes(b"partial")
    os.utime(old_tmp, (0, 0))
    cache.save("x", "k2", a + 1)
    names = sorted(p.name for p in tmp_path.iterdir())
    # x under k1 and the hour-old temporary are gone; y (another name) and a fresh temporary stay.
    assert names == sorted([fresh_tmp.name, "x_key-k2.npy", "y_key-k1.npz"])


def test_array_cache_treats_an_unreadable_file_as_a_miss(tmp_path, caplog):
    cache = ArrayCache(tmp_path)
    cache.path("x", "k").write_bytes(b"not an array")
    cache.path("y", "k", ".npz").write_bytes(b"not a zip")
    assert cache.load("x", "k") is None and cache.load("x", "k", mmap=True) is None
    assert cache.load_npz("y", "k") is None
    assert "unreadable cache file" in caplog.text
