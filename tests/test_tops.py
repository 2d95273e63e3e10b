"""Tests of deipp_core.analyses.tops: ARMA whitening, GARCH(1,1), DCC, ToPS weights and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat

from deipp_core.analyses.tops import (
    _dcc_nll,
    arma11_whiten,
    dcc,
    dcc_fit,
    garch11_fit,
    read_tops_weights,
    run_tops,
    tops_scores,
)
from deipp_core.data.dataset import ATLAS_COLUMNS, MOTION_COLUMNS, Participant, Run
from deipp_core.edges import edge_indices, n_edges
from deipp_core.exceptions import DataFormatError, DataLayoutError, ParameterError


def _simulate_garch(n, omega, alpha, beta, rng):
    x, h = np.zeros(n), np.full(n, omega / (1 - alpha - beta))
    for t in range(n):
        if t:
            h[t] = omega + alpha * x[t - 1] ** 2 + beta * h[t - 1]
        x[t] = np.sqrt(h[t]) * rng.normal()
    return x


def _reference_dcc(eps, a, b):
    """Explicit DCC recursion on full matrices (``dcc_mvgarch_likelihood``): R_t and the quasi-NLL."""
    T, P = eps.shape
    qbar = np.cov(eps, rowvar=False)
    Q = qbar.copy()
    prev = np.zeros(P)
    Rs, nll = [], 0.0
    for t in range(T):
        Q = (1 - a - b) * qbar + a * np.outer(prev, prev) + b * Q
        d = np.sqrt(np.diag(Q))
        R = Q / np.outer(d, d)
        Rs.append(R)
        nll += np.log(np.linalg.det(R)) + eps[t] @ np.linalg.inv(R) @ eps[t]
        prev = eps[t]
    return np.array(Rs), 0.5 * nll / T


def test_garch11_fit_recovers_known_parameters(rng):
    x = _simulate_garch(5000, 0.1, 0.12, 0.8, rng)
    fit = garch11_fit(x)
    assert fit.converged
    assert abs(fit.alpha - 0.12) < 0.04
    assert abs(fit.beta - 0.8) < 0.08
    assert abs(fit.omega / (1 - fit.alpha - fit.beta) - 0.1 / 0.08) < 0.3  # unconditional variance
    assert fit.h.shape == x.shape and np.all(fit.h > 0)


def test_garch11_fit_rejects_constant_series():
    with pytest.raises(DataFormatError, match="constant"):
        garch11_fit(np.ones(100))


def test_arma11_whiten_recovers_parameters_and_whitens(rng):
    n = 3000
    e = rng.normal(size=n)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = 0.5 + 0.7 * y[t - 1] + e[t] + 0.4 * e[t - 1]
    w, params = arma11_whiten(y, return_params=True)
    assert abs(params["phi"][0] - 0.7) < 0.05
    assert abs(params["theta"][0] - 0.4) < 0.06
    assert np.mean(w**2) == pytest.approx(1.0, rel=1e-12)  # ε̂ / σ̂ with σ̂² = mean ε̂²
    lag1 = np.corrcoef(w[1:, 0], w[:-1, 0])[0, 1]
    assert abs(lag1) < 0.05


def test_dcc_with_zero_parameters_is_the_static_correlation(rng):
    x = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    model = dcc_fit(x, whiten=False, a=0.0, b=0.0)
    edges = model.edges()
    static = np.corrcoef(model.std_resid, rowvar=False)
    i, j = edge_indices(5)
    np.testing.assert_allclose(edges, np.broadcast_to(static[i, j], edges.shape), atol=1e-12)


def test_dcc_edges_match_explicit_recursion_in_edge_order(rng):
    eps = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4))
    model = dcc_fit(eps, whiten=False, a=0.05, b=0.9, block_size=7)  # blocks do not divide T
    ref, _ = _reference_dcc(model.std_resid, 0.05, 0.9)
    i, j = edge_indices(4)  # MATLAB column-major upper triangle: (0,1), (0,2), (1,2), (0,3), ...
    np.testing.assert_allclose(model.edges(), ref[:, i, j], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dcc(eps, whiten=False, a=0.05, b=0.9), ref[:, i, j], rtol=1e-10, atol=1e-12)


def test_dcc_quasi_likelihood_matches_explicit_formula(rng):
    eps = rng.normal(size=(40, 3))
    _, ref = _reference_dcc(eps, 0.03, 0.9)
    got = _dcc_nll([0.03, 0.9], eps, np.cov(eps, rowvar=False), 16)
    assert got == pytest.approx(ref, rel=1e-10)


def test_dcc_recovers_planted_time_varying_correlation(rng):
    T = 1500
    rho = 0.7 * np.sin(2 * np.pi * np.arange(T) / 500)
    z = rng.normal(size=(T, 2))
    y = np.c_[z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]]
    model = dcc_fit(y, whiten=False)
    assert model.converged and model.a > 0.01 and model.a + model.b < 1
    assert np.corrcoef(model.edges()[:, 0], rho)[0, 1] > 0.8


def test_dcc_parameter_errors(rng):
    x = rng.normal(size=(50, 3))
    with pytest.raises(ParameterError, match="both"):
        dcc_fit(x, a=0.1)
    with pytest.raises(ParameterError, match="a \\+ b < 1"):
        dcc_fit(x, a=0.5, b=0.6)
    with pytest.raises(DataFormatError, match="non-finite"):
        dcc_fit(np.where(np.arange(50)[:, None] == 3, np.nan, x))


def test_tops_score_equals_explicit_sum_over_edges_omitting_nan(rng):
    x = rng.normal(size=(120, 5))
    x[:, 2] = 0.0  # a region outside the brain: its edges are NaN and omitted
    w = rng.normal(size=n_edges(5))
    scores, model = tops_scores(x, w, return_model=True)
    edges = model.edges()
    i, j = edge_indices(5)
    assert np.isnan(edges[:, (i == 2) | (j == 2)]).all()
    explicit = np.array([sum(edges[t, e] * w[e] for e in range(w.size) if not np.isnan(edges[t, e]))
                         for t in range(x.shape[0])])
    np.testing.assert_allclose(scores, explicit, rtol=1e-12)
    with pytest.raises(DataFormatError, match="expected 10 edge weights"):
        tops_scores(x, w[:-1])


def test_dcc_is_deterministic(rng):
    x = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))
    a, b = dcc_fit(x), dcc_fit(x)
    assert (a.a, a.b) == (b.a, b.b)
    np.testing.assert_array_equal(a.edges(), b.edges())


# ----------------------------------------------------------------------------------------------
# Weights files
# ----------------------------------------------------------------------------------------------


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_read_tops_weights_formats(tmp_path, rng):
    w = rng.normal(size=n_edges(6))
    savemat(tmp_path / "w.mat", {"ToPS_w": w[:, None]})
    np.save(tmp_path / "w.npy", w)
    np.savetxt(tmp_path / "w.csv", w)
    np.savetxt(tmp_path / "w.tsv", w[None, :], delimiter="\t")
    for name in ("w.mat", "w.npy", "w.csv", "w.tsv"):
        np.testing.assert_allclose(read_tops_weights(tmp_path / name, n_regions=6), w)


def test_read_tops_weights_errors_name_the_file(tmp_path, rng):
    savemat(tmp_path / "other.mat", {"weights": rng.normal(size=15)})
    with pytest.raises(DataFormatError) as err:
        read_tops_weights(tmp_path / "other.mat", n_regions=6)
    assert "other.mat" in _one_line(err) and "'ToPS_w'" in str(err.value)

    np.save(tmp_path / "short.npy", rng.normal(size=14))
    with pytest.raises(DataFormatError) as err:
        read_tops_weights(tmp_path / "short.npy", n_regions=6)
    assert "short.npy" in _one_line(err) and "holds 14 weights; expected 15" in str(err.value)

    bad = rng.normal(size=15)
    bad[3] = np.nan
    np.savetxt(tmp_path / "nan.csv", bad)
    with pytest.raises(DataFormatError) as err:
        read_tops_weights(tmp_path / "nan.csv", n_regions=6)
    assert "nan.csv" in _one_line(err) and "edge 3" in str(err.value)
    assert np.isnan(read_tops_weights(tmp_path / "nan.csv", n_regions=6, allow_nan=True)[3])

    with pytest.raises(DataLayoutError) as err:
        read_tops_weights(tmp_path / "absent.mat")
    assert "absent.mat" in _one_line(err) and "38,781" in str(err.value)

    (tmp_path / "w.json").write_text("[]")
    with pytest.raises(DataFormatError, match="unknown weights format"):
        read_tops_weights(tmp_path / "w.json", n_regions=6)


# ----------------------------------------------------------------------------------------------
# The comparison on a small synthetic participant
# ----------------------------------------------------------------------------------------------

TR, N_VOL, N_REG = 0.46, 260, 4


def _participant(seed=0):
    """Two sessions of three runs whose regions 0 and 1 co-fluctuate more when the rating is high."""
    rng = np.random.default_rng(seed)
    atlas = pd.DataFrame({"index": np.arange(1, N_REG + 1), "name": [f"r{k}" for k in range(N_REG)],
                          "network": "NONE", "x": 0.0, "y": 0.0, "z": 0.0, "included": True})
    atlas = atlas[list(ATLAS_COLUMNS)]
    t = np.arange(0.0, 130.0, 0.05)
    vol_t = 0.35 + TR * np.arange(N_VOL)
    runs = []
    for s in ("01", "02"):
        for r in (1, 2, 3):
            level = rng.uniform(0.1, 0.9)
            value = np.clip(level + 0.15 * np.sin(2 * np.pi * t / 60 + rng.uniform(0, 6)), 0, 1)
            pain = np.interp(vol_t - 13 * TR, t, value)
            common = rng.normal(size=N_VOL)
            ts = rng.normal(size=(N_VOL, N_REG))
            ts[:, :2] += 1.5 * np.sqrt(pain)[:, None] * common[:, None]
            conf = pd.DataFrame(np.zeros((N_VOL, 6)), columns=list(MOTION_COLUMNS))
            conf["framewise_displacement"] = 0.0
            conf["censor"] = 1
            runs.append(Run(s, "rating", r, TR, ts, conf, pd.DataFrame({"time": t, "value": value}),
                            source=f"/synthetic/ses-{s}/run-{r}"))
    return Participant("01", atlas, tuple(runs))


def test_run_tops_rows_levels_and_determinism(tmp_path):
    p = _participant()
    w = np.zeros(n_edges(N_REG))
    w[0] = 1.0  # edge (0, 1)
    res = run_tops(p, w, n_boot=50, whiten=False)
    assert list(res.rows.columns) == ["kind", "session", "run", "bin", "rating", "predicted"]
    counts = res.rows["kind"].value_counts().to_dict()
    assert counts == {"rbin10": 60, "tbin10": 60, "tbin5": 30, "run": 6}
    assert set(res.metrics["level"]) == {"1min", "2min", "run", "session"}
    assert len(res.fits) == 6 and (res.fits["n_regions"] == N_REG).all()
    # run rows are the mean of the frame-wise scores of the kept frames
    run_means = res.frames.groupby(["session", "run"])["score"].mean().to_numpy()
    np.testing.assert_allclose(res.rows.loc[res.rows["kind"] == "run", "predicted"], run_means)
    # the planted coupling is tracked across runs
    assert res.metrics.set_index("level").loc["run", "r"] > 0.5
    again = run_tops(p, w, n_boot=50, whiten=False, n_jobs=2, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(res.rows, again.rows)
    cached = run_tops(p, w, n_boot=50, whiten=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 6
    pd.testing.assert_frame_equal(res.metrics, cached.metrics)


def test_run_tops_unknown_session():
    with pytest.raises(ParameterError, match="session"):
        run_tops(_participant(), np.zeros(n_edges(N_REG)), sessions=["09"])


def test_compare_tops_refuses_weights_on_the_twin_and_real_data_without_weights(tmp_path):
    from deipp_core.analyses.tops import compare_tops
    from deipp_core.data.dataset import Dataset

    p = _participant()
    twin = Dataset({"01": p}, "twin", tmp_path, "synthetic twin")
    with pytest.raises(ParameterError, match="digital twin"):
        compare_tops(twin, ["01"], tops_weights=tmp_path / "ToPS_weight.mat")
    real = Dataset({"01": p}, "bids", tmp_path, "synthetic real")
    with pytest.raises(ParameterError, match="needs the ToPS weights"):
        compare_tops(real, ["01"])
    with pytest.raises(DataLayoutError, match="absent.mat"):
        compare_tops(real, ["01"], tops_weights=tmp_path / "absent.mat")


# ----------------------------------------------------------------------------------------------
# Real-data path: region means from a NIfTI, BOLD file lookup, CLI option
# ----------------------------------------------------------------------------------------------


def _nifti_pair(rng, n_vol=30):
    nib = pytest.importorskip("nibabel")
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    lab = np.zeros((4, 4, 4), np.int16)
    lab[:2, :2], lab[2:, :2], lab[:2, 2:], lab[2:, 2:, :2] = 1, 2, 3, 4
    bold = rng.normal(size=(4, 4, 4, n_vol)).astype(np.float32)
    return nib.Nifti1Image(lab, aff), nib.Nifti1Image(bold, aff), lab, bold


def test_fan_region_timeseries_is_the_mean_within_each_label(rng):
    from deipp_core.analyses.tops import fan_region_timeseries

    atlas, bold, lab, data = _nifti_pair(rng)
    ts = fan_region_timeseries(bold, atlas, n_regions=4)
    ref = np.stack([data[lab == k].mean(axis=0) for k in range(1, 5)], axis=1)
    np.testing.assert_allclose(ts, ref, atol=1e-6)
    with pytest.raises(DataFormatError, match="expected 279"):
        fan_region_timeseries(bold, atlas)


def test_fan_region_timeseries_refuses_another_grid(rng):
    import nibabel as nib

    from deipp_core.analyses.tops import fan_region_timeseries

    atlas, _, _, _ = _nifti_pair(rng)
    other = nib.Nifti1Image(rng.normal(size=(5, 4, 4, 10)).astype(np.float32),
                            np.diag([3.0, 3.0, 3.0, 1.0]))
    with pytest.raises(DataFormatError, match="same shape and affine"):
        fan_region_timeseries(other, atlas, n_regions=4)


def test_bold_region_source_names_missing_files_and_checks_volumes(tmp_path, rng):
    import nibabel as nib

    from deipp_core.analyses.tops import bold_region_source

    atlas, bold, _, _ = _nifti_pair(rng, n_vol=30)
    nib.save(atlas, tmp_path / "atlas.nii.gz")
    run = _participant().rating_runs()[0]  # 260 volumes
    template = "sub-{participant}_ses-{session}_run-{run}_bold.nii.gz"
    source = bold_region_source(tmp_path, tmp_path / "atlas.nii.gz", template=template, n_regions=4)
    with pytest.raises(DataLayoutError, match="sub-01_ses-01_run-1_bold.nii.gz"):
        source(run, "01")
    nib.save(bold, tmp_path / "sub-01_ses-01_run-1_bold.nii.gz")
    with pytest.raises(DataFormatError, match="has 30 volumes but ses-01_task-rating_run-1 has 260"):
        source(run, "01")
    with pytest.raises(DataLayoutError, match="atlas"):
        bold_region_source(tmp_path, tmp_path / "absent.nii", template=template)


def test_cli_passes_tops_weights_to_the_chapter(tmp_path):
    from deipp_core.cli import _chapter_params, build_parser

    args = build_parser().parse_args(["chapter", "what-cannot-be-rerun",
                                      "--tops-weights", str(tmp_path / "w.mat")])
    assert _chapter_params(args)["tops_weights"] == str((tmp_path / "w.mat").resolve())
    args = build_parser().parse_args(["chapter", "what-cannot-be-rerun", "--tops-weights", "w.mat",
                                      "--param", "tops_weights=x"])
    with pytest.raises(ParameterError, match="both given"):
        _chapter_params(args)
