"""Scale-out: the repeated work runs on a Dask cluster through joblib with identical results.

Every repetition loop of the analyses (nested LOSO folds, training-size fits, hierarchical-bootstrap
levels, permutation-importance blocks) is a ``joblib.Parallel`` call without a hard-coded backend, and
its randomness is fixed by seeds before any work is dispatched. Switching the backend with
``joblib.parallel_config(backend="dask")`` therefore moves the work to a ``dask.distributed`` cluster
and must not change a single byte of the results. Here the cluster is local (two worker processes,
one thread each); on a real cluster only the ``Client`` changes (see ``book/scale-out.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from deipp_core.analyses.importance import region_importance  # noqa: E402
from deipp_core.analyses.prediction import EVAL_KINDS, run_prediction  # noqa: E402
from deipp_core.analyses.training_size import training_size  # noqa: E402
from deipp_core.data import load_dataset  # noqa: E402
from deipp_core.evaluation import evaluate  # noqa: E402
from deipp_core.model import nested_loso  # noqa: E402

pytestmark = pytest.mark.slow  # starts a cluster of worker processes: tens of seconds on a busy machine


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def main_model(quick_twin_root):
    """The main analysis of sub-01 of the quick twin, on the default backend."""
    dataset = load_dataset("twin", profile="quick", participants="01")
    return run_prediction(dataset["01"], profile="quick", seed=0, n_jobs=1)


def _nested_loso(features, n_jobs):
    X, rows = features.select("rbin10")
    eval_mask = features.rows["kind"].isin(EVAL_KINDS).to_numpy()
    return nested_loso(X, rows["rating"].to_numpy(), rows["session"].to_numpy(), X_eval=features.X[eval_mask],
                       groups_eval=features.rows.loc[eval_mask, "session"].to_numpy(), n_jobs=n_jobs)


def _assert_same_arrays(a, b, names):
    for name in names:
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"{name} differs between the default and the Dask backend"


def _transitions(client) -> int:
    """Task state transitions seen by the scheduler (grows only when work reaches the cluster)."""
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)


def test_nested_loso_is_identical_on_a_dask_cluster(client, main_model):
    before = _transitions(client)
    with joblib.parallel_config(backend="dask"):
        on_dask = _nested_loso(main_model.features, n_jobs=2)
    assert _transitions(client) > before, "the folds did not run on the cluster"
    _assert_same_arrays(main_model.cv, on_dask, ["lambdas", "ocv_pred", "icv_r", "fold_coef", "fold_intercept",
                                                  "final_coef", "y_pred_train", "y_pred_eval"])


def test_training_size_is_identical_on_a_dask_cluster(client, main_model):
    features, cv = main_model.features, main_model.cv
    kwargs = dict(sizes=[2, 3], n_reps=3, seed=5, n_boot=100, progress=False)
    local = training_size(features, cv, n_jobs=2, **kwargs)  # loky processes
    before = _transitions(client)
    with joblib.parallel_config(backend="dask"):
        on_dask = training_size(features, cv, n_jobs=2, **kwargs)
    assert _transitions(client) > before, "the fits did not run on the cluster"
    _assert_same_arrays(local, on_dask, ["predictions", "train_sessions", "n_selected"])
    pd.testing.assert_frame_equal(local.reps, on_dask.reps, check_exact=True)
    pd.testing.assert_frame_equal(local.summary, on_dask.summary, check_exact=True)


def test_bootstrap_and_importance_are_identical_on_a_dask_cluster(client, main_model):
    features, cv, table = main_model.features, main_model.cv, main_model.levels
    local_boot = evaluate(table, n_boot=300, seed=3, n_jobs=2)  # threads
    local_imp = region_importance(features, cv, n_perm=600, seed=3, n_jobs=2)  # threads
    before = _transitions(client)
    with joblib.parallel_config(backend="dask"):
        dask_boot = evaluate(table, n_boot=300, seed=3, n_jobs=2)
        dask_imp = region_importance(features, cv, n_perm=600, seed=3, n_jobs=2)
    assert _transitions(client) > before, "the bootstrap and the permutations did not run on the cluster"
    pd.testing.assert_frame_equal(local_boot, dask_boot, check_exact=True)
    pd.testing.assert_frame_equal(local_imp.table, dask_imp.table, check_exact=True)
    assert local_imp.r_orig == dask_imp.r_orig
