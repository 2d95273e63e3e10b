"""Results are written safely: interrupted writes leave nothing a later run would read, raw inputs are
never opened for writing, and a cached result whose key does not match is recomputed."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deipp_core.analyses import prediction
from deipp_core.data.bids import read_dataset
from deipp_core.data.derivatives import ResultCache, read_tsv, write_tsv
from deipp_core.data.twin import TwinConfig, generate_twin

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name open files")

TINY = TwinConfig.quick(n_sessions=(3, 3), n_parcels=40, module_size=3)

# Run in a child process: make the atomic writer stall halfway through writing the file whose name
# contains TARGET (it writes half the bytes, flushes them, signals READY and sleeps), so the test can
# SIGKILL the process mid-write. The hook exists only in this test script.
_CHILD = textwrap.dedent(
    """
    import os
    import sys
    import time
    from pathlib import Path

    target, ready, action, root = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    _fdopen = os.fdopen

    class _Stall:
        def __init__(self, fh):
            self._fh = fh

        def write(self, data):
            self._fh.write(data[: len(data) // 2])
            self._fh.flush()
            ready.write_text("writing")
            time.sleep(600)

        def __getattr__(self, name):
            return getattr(self._fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._fh.__exit__(*exc)

    def fdopen(fd, *args, **kwargs):
        fh = _fdopen(fd, *args, **kwargs)
        if target in os.readlink(f"/proc/self/fd/{fd}"):
            return _Stall(fh)
        return fh

    os.fdopen = fdopen

    if action == "predict":
        from deipp_core.analyses.prediction import predict_participant
        from deipp_core.data.bids import read_dataset

        predict_participant(read_dataset(root, participants="01"), "01", profile="quick", seed=0)
    else:
        import numpy as np
        import pandas as pd
        from deipp_core.data.derivatives import write_tsv

        write_tsv(pd.DataFrame({"x": np.arange(200_000)}), root / "table.tsv")
    """
)


@pytest.fixture(scope="module")
def twin_root(tmp_path_factory):
    return generate_twin(tmp_path_factory.mktemp("safe") / "twin", TINY, seed=5)


@pytest.fixture
def fresh_twin(twin_root, tmp_path):
    """A private copy of the twin (tests write derivatives into it)."""
    import shutil

    root = tmp_path / "twin"
    shutil.copytree(twin_root, root)
    return root


@pytest.fixture(autouse=True)
def _no_output_redirect(monkeypatch):
    monkeypatch.delenv("DEIPP_OUTPUT_DIR", raising=False)


def _kill_mid_write(tmp_path: Path, target: str, action: str, root: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, str(script), target, str(ready), action, str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    try:
        while not ready.exists():
            if proc.poll() is not None:
                pytest.fail(f"the child ended before the write began: {proc.communicate()[1][-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the child never reached the write")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _count_fits(monkeypatch) -> list:
    calls = []
    original = prediction.nested_loso

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(prediction, "nested_loso", counting)
    return calls


def _cache_files(root: Path) -> list[Path]:
    return sorted((root / "derivatives" / "deipp" / "sub-01").glob("sub-01_desc-nestedloso_key-*.npz"))


def test_killed_cache_write_leaves_no_file_a_later_run_reads(fresh_twin, tmp_path, monkeypatch):
    _kill_mid_write(tmp_path, "nestedloso", "predict", fresh_twin)
    folder = fresh_twin / "derivatives" / "deipp" / "sub-01"
    assert _cache_files(fresh_twin) == []  # nothing under the name a later run looks up
    partial = list(folder.glob(".sub-01_desc-nestedloso_key-*.npz.*.tmp"))
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # the kill did hit a half-written file

    fits = _count_fits(monkeypatch)
    dataset = read_dataset(fresh_twin, participants="01")
    result = prediction.predict_participant(dataset, "01", profile="quick", seed=0)
    assert fits == [1]  # refitted rather than read the partial file
    files = _cache_files(fresh_twin)
    assert len(files) == 1
    assert files[0].name.removeprefix(".") in partial[0].name  # the same key the killed run was writing
    loaded = prediction.load_cv(files[0])
    np.testing.assert_array_equal(loaded.fold_coef, result.cv.fold_coef)
    again = prediction.predict_participant(dataset, "01", profile="quick", seed=0)
    assert fits == [1]
    pd.testing.assert_frame_equal(again.metrics, result.metrics)


def test_killed_table_write_keeps_the_previous_table(tmp_path):
    old = pd.DataFrame({"x": [1, 2, 3]})
    write_tsv(old, tmp_path / "table.tsv")
    before = (tmp_path / "table.tsv").read_bytes()
    _kill_mid_write(tmp_path, "table.tsv", "table", tmp_path)
    assert (tmp_path / "table.tsv").read_bytes() == before
    pd.testing.assert_frame_equal(read_tsv(tmp_path / "table.tsv"), old)


def _is_write_mode(mode) -> bool:
    return any(c in str(mode) for c in "wax+")


def test_raw_inputs_are_never_opened_for_writing(fresh_twin, monkeypatch):
    root = fresh_twin.resolve()
    ours = root / "derivatives" / "deipp"
    raw = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    writes: list[Path] = []

    def record(path):
        if isinstance(path, (str, os.PathLike)):
            p = Path(os.path.abspath(os.fspath(path)))
            if p == root or root in p.parents:
                writes.append(p)

    def wrap_open(original):
        def patched(file, mode="r", *args, **kwargs):
            if _is_write_mode(mode):
                record(file)
            return original(file, mode, *args, **kwargs)
        return patched

    def patched_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            record(path)
        return os_open(path, flags, *args, **kwargs)

    os_open = os.open
    monkeypatch.setattr(builtins, "open", wrap_open(builtins.open))
    monkeypatch.setattr(io, "open", wrap_open(io.open))
    monkeypatch.setattr(gzip, "open", wrap_open(gzip.open))
    monkeypatch.setattr(os, "open", patched_os_open)

    dataset = read_dataset(root)
    for label in sorted(dataset.participants):
        prediction.predict_participant(dataset, label, profile="quick", seed=0)

    monkeypatch.undo()
    assert writes, "no write was recorded: the patch did not see the cache being written"
    assert any(p.suffix == ".tmp" for p in writes)  # the atomic temporary files of the cache
    outside = sorted({str(p) for p in writes if ours not in p.parents})
    assert not outside, f"opened for writing outside derivatives/deipp: {outside}"
    for path, digest in raw.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} changed"


def test_a_cache_whose_key_does_not_match_is_recomputed(fresh_twin, monkeypatch):
    fits = _count_fits(monkeypatch)
    folder = fresh_twin / "derivatives" / "deipp" / "sub-01"
    folder.mkdir(parents=True)
    # A stale result under another key is never read (it is not even a valid npz).
    (folder / "sub-01_desc-nestedloso_key-0000000000000000.npz").write_bytes(b"stale")

    dataset = read_dataset(fresh_twin, participants="01")
    first = prediction.predict_participant(dataset, "01", profile="quick", seed=0)
    assert fits == [1]
    key_1 = [p for p in _cache_files(fresh_twin) if "key-0000" not in p.name]
    assert len(key_1) == 1

    prediction.predict_participant(dataset, "01", profile="quick", seed=0)
    assert fits == [1]  # same data and code: reused

    # Changed input data (a later modification time of one raw file): new key, refit.
    ts = next(fresh_twin.rglob("*_task-rating_run-1_*_timeseries.tsv.gz"))
    st = ts.stat()
    os.utime(ts, (st.st_atime, st.st_mtime + 100))
    prediction.predict_participant(read_dataset(fresh_twin, participants="01"), "01", profile="quick", seed=0)
    assert fits == [1, 1]

    # Changed code: new key, refit.
    monkeypatch.setattr(prediction, "code_digest", lambda: "other code")
    second = prediction.predict_participant(read_dataset(fresh_twin, participants="01"), "01",
                                            profile="quick", seed=0)
    assert fits == [1, 1, 1]
    assert len(_cache_files(fresh_twin)) == 4  # stale + three keys
    np.testing.assert_allclose(second.cv.fold_coef, first.cv.fold_coef)


def test_result_cache_misses_on_another_key(tmp_path):
    cache = ResultCache(tmp_path)
    table = pd.DataFrame({"session": ["01", "02"], "r": [0.1, 0.2]})
    cache.put("metrics", "aaaa", table)
    assert cache.get("metrics", "bbbb") is None
    pd.testing.assert_frame_equal(cache.get("metrics", "aaaa"), table)
