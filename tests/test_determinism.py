"""The same seed and inputs give byte-identical files: twin, features, predictions, evaluation.

Two separate Python processes (different hash seeds; one of them with parallel twin generation and
parallel outer folds) run the whole chain on the same seed and write every intermediate table with
:func:`deipp_core.data.derivatives.write_tsv`; the files must be identical byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_SCRIPT = textwrap.dedent(
    """
    import io
    import sys
    from pathlib import Path

    import numpy as np

    from deipp_core.analyses.prediction import run_prediction
    from deipp_core.data.bids import read_dataset
    from deipp_core.data.derivatives import atomic_write_bytes, write_tsv
    from deipp_core.data.twin import TwinConfig, generate_twin
    from deipp_core.features import participant_features

    out, n_jobs = Path(sys.argv[1]), int(sys.argv[2])
    config = TwinConfig.quick(n_sessions=(3, 3), n_parcels=40, module_size=3)
    root = generate_twin(out / "twin", config, seed=11, n_jobs=n_jobs)
    # no parsed-run cache: its keys hold the files' modification times (tests/test_data_cache.py)
    dataset = read_dataset(root, use_cache=False)
    res = out / "results"
    for label in sorted(dataset.participants):
        feats = participant_features(dataset[label])
        buffer = io.BytesIO()
        np.save(buffer, feats.X, allow_pickle=False)
        atomic_write_bytes(res / f"sub-{label}_features.npy", buffer.getvalue())
        write_tsv(feats.rows, res / f"sub-{label}_features.tsv")
        result = run_prediction(dataset[label], profile="quick", seed=3, n_jobs=n_jobs, features=feats)
        write_tsv(result.predictions, res / f"sub-{label}_desc-nestedloso_predictions.tsv")
        write_tsv(result.levels, res / f"sub-{label}_levels.tsv")
        write_tsv(result.metrics, res / f"sub-{label}_evaluate.tsv")
        write_tsv(result.within_summary, res / f"sub-{label}_within.tsv")
        coef = io.BytesIO()
        np.save(coef, result.cv.fold_coef, allow_pickle=False)
        atomic_write_bytes(res / f"sub-{label}_foldcoef.npy", coef.getvalue())
    """
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("determinism")
    script = base / "chain.py"
    script.write_text(_SCRIPT)
    procs = []
    for name, hash_seed, n_jobs in (("a", "1", 1), ("b", "2", 2)):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(base / name), str(n_jobs)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    return _files(base / "a"), _files(base / "b")


def test_every_expected_file_was_written(two_runs):
    a, _ = two_runs
    for label in ("01", "02"):
        for suffix in ("features.npy", "features.tsv", "desc-nestedloso_predictions.tsv", "levels.tsv",
                       "evaluate.tsv", "within.tsv", "foldcoef.npy"):
            assert f"results/sub-{label}_{suffix}" in a
    assert any(k.endswith("_timeseries.tsv.gz") for k in a)
    assert any(k.endswith("_resp.tsv") for k in a)


@pytest.mark.parametrize("part", ["twin", "results"])
def test_two_runs_are_byte_identical(two_runs, part):
    a, b = two_runs
    a = {k: v for k, v in a.items() if k.startswith(part + "/")}
    b = {k: v for k, v in b.items() if k.startswith(part + "/")}
    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"files differ between two runs with the same seed: {different[:10]}"


def test_results_are_not_trivial(two_runs):
    a, _ = two_runs
    text = a["results/sub-01_evaluate.tsv"].decode()
    lines = text.splitlines()
    assert lines[0].split("\t")[:3] == ["level", "n_units", "r"]
    assert [line.split("\t")[0] for line in lines[1:]] == ["1min", "2min", "run", "session"]
    # Predictions vary across held-out units (a constant output would make the identity check vacuous).
    preds = a["results/sub-01_desc-nestedloso_predictions.tsv"].decode().splitlines()
    col = preds[0].split("\t").index("predicted")
    assert len({line.split("\t")[col] for line in preds[1:]}) > 10
