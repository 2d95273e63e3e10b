"""The digital twin: layout, ground truth, determinism, atomic writes, and every planted property.

The property tests read the quick twin back with plain pandas (not the package reader), so they check
the files themselves. Each property of the issue has its own test: slow rating fluctuations, run and
session differences, bounded hand-held ratings, network structure, BOLD autocorrelation, FD spikes
and censoring, a mild motion-pain confound, participant-specific planted edges, the null mode and the
13-TR lag.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deipp_core.data import twin as twin_mod
from deipp_core.data.atlas import ATLAS_COLUMNS
from deipp_core.data.twin import (
    GROUNDTRUTH_PIPELINE_NAME,
    PIPELINE_NAME,
    TwinConfig,
    generate_twin,
    simulate_latent_pain,
    simulate_motion,
    simulate_rating,
)
from deipp_core.exceptions import ParameterError
from deipp_core.motion import MOTION_COLUMNS, framewise_displacement

QUICK = TwinConfig.quick()
ATLAS = QUICK.atlas_name
LAG = 13
TRIM = 66  # ceil(30 s / TR): the analyses drop the first 30 s of every run


# ---------------------------------------------------------------------------------------------
# fixtures and readers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def twin(quick_twin_root) -> Path:
    """The session-wide quick twin of conftest.py (``generate_twin(..., TwinConfig.quick(), seed=0)``)."""
    desc = json.loads((quick_twin_root / "dataset_description.json").read_text())["DeippTwin"]
    assert (desc["scale"], desc["seed"], desc["null"]) == ("quick", 0, False)
    return quick_twin_root


@pytest.fixture(scope="module")
def null_twin(tmp_path_factory) -> Path:
    return generate_twin(tmp_path_factory.mktemp("twin") / "quick-null", QUICK, seed=0, null=True)


def _der(root: Path) -> Path:
    return root / "derivatives" / PIPELINE_NAME


def _gt(root: Path) -> Path:
    return root / "derivatives" / GROUNDTRUTH_PIPELINE_NAME


def _atlas(root: Path) -> pd.DataFrame:
    return pd.read_csv(_der(root) / f"atlas-{ATLAS}_dseg.tsv", sep="\t")


def _meta(root: Path, sub: str) -> dict:
    return json.loads((_gt(root) / f"sub-{sub}" / f"sub-{sub}_desc-groundtruth.json").read_text())


def _sessions(root: Path, sub: str) -> list[str]:
    return sorted(p.name for p in (root / f"sub-{sub}").glob("ses-*"))


@functools.lru_cache(maxsize=256)
def _run(root: Path, sub: str, ses: str, run: int | None) -> dict:
    """One run read back with pandas (cached: several tests look at the same runs; do not mutate)."""
    stem = f"sub-{sub}_{ses}_" + ("task-rest" if run is None else f"task-rating_run-{run}")
    func = _der(root) / f"sub-{sub}" / ses / "func"
    out = {
        "bold": pd.read_csv(func / f"{stem}_atlas-{ATLAS}_timeseries.tsv.gz", sep="\t").to_numpy(),
        "conf": pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t"),
        "pain": pd.read_csv(
            _gt(root) / f"sub-{sub}" / ses / f"{stem}_desc-latentpain_timeseries.tsv", sep="\t"
        )["pain"].to_numpy(),
    }
    if run is not None:
        out["resp"] = np.loadtxt(root / f"sub-{sub}" / ses / "func" / f"{stem}_resp.tsv")
    return out


def _rating_runs(root: Path, sub: str):
    for ses in _sessions(root, sub):
        for run in (1, 2, 3):
            yield ses, run, _run(root, sub, ses, run)


def _rating_on_tr_grid(resp: np.ndarray) -> np.ndarray:
    """The rating at the mid-acquisition time of every volume (methods §5.1)."""
    return np.interp(QUICK.volume_times(), resp[:, 0], resp[:, 1])


def _module_signs(meta: dict, n_parcels: int) -> np.ndarray:
    """Sign vectors of the coupling groups, shape (K, n_parcels): +1 on A, −1 on B, 0 elsewhere."""
    module = np.zeros(n_parcels)
    module[meta["modules"]["A"]] = 1.0
    module[meta["modules"]["B"]] = -1.0
    groups = meta.get("coupling_groups") or [meta["modules"]["A"] + meta["modules"]["B"]]
    s = np.zeros((len(groups), n_parcels))
    for k, parcels in enumerate(groups):
        s[k, parcels] = module[parcels]
    return s


def _oracle_cofluctuation(bold: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Σ over planted edges of sign·z_i·z_j per frame.

    Per coupling group (row of ``signs``): ½[(Σ s_i z_i)² − Σ s_i² z_i²]; summed over the groups.
    """
    signs = np.atleast_2d(signs)
    z = (bold - bold.mean(0)) / bold.std(0, ddof=1)
    return 0.5 * ((z @ signs.T) ** 2 - (z**2) @ (signs**2).T).sum(axis=1)


def _oracle_vs_lagged_pain(root: Path, sub: str, signs: np.ndarray, lags=(LAG,)) -> float | list[float]:
    """Correlation of the planted-edge co-fluctuation at frame t with latent pain at t − lag, pooled
    over the rating runs (one value per lag; a float for a single lag)."""
    runs = [(_oracle_cofluctuation(r["bold"], signs), r["pain"]) for _, _, r in _rating_runs(root, sub)]
    out = []
    for lag in lags:
        co = np.concatenate([c[lag:] for c, _ in runs])
        pain = np.concatenate([p[: len(p) - lag] for _, p in runs])
        out.append(float(np.corrcoef(co, pain)[0, 1]))
    return out[0] if len(out) == 1 else out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


def test_paper_config_is_the_study_layout():
    c = TwinConfig.paper()
    assert c.participants == ("01", "02")
    assert c.n_sessions == (25, 30) and sum(c.n_sessions) == 55
    assert (c.n_rating_runs, c.include_rest) == (3, True)
    assert (c.tr, c.n_volumes, c.n_dummy) == (0.46, 1304, 22)
    assert c.first_volume_time == pytest.approx(0.35)
    assert c.atlas_name == "Seitzman300"
    assert c.lag_tr == 13
    # the calibration probe's brain (reference/twin_calibration.md) ...
    assert (c.global_amplitude, c.network_amplitude, c.ar_phi) == (0.3, 0.7, 0.9)
    # ... with the pain encoding calibrated for the training-size curve (test_twin_calibration.py)
    assert (c.module_size, c.n_coupling_signals, c.coupling_gain, c.session_gain_sd) == (32, 4, 0.5, 0.15)
    assert (c.session_phi, c.session_sd, c.run_shift, c.within_run_tau_s, c.within_run_sd) == (
        0.7, 0.065, (0.0, 0.06, 0.02), 60.0, 0.16)


def test_quick_config_keeps_the_structure_at_a_smaller_size():
    q, p = TwinConfig.quick(), TwinConfig.paper()
    assert q.participants == p.participants and len(set(q.n_sessions)) == 2  # unequal, like the study
    assert 5 <= min(q.n_sessions) and max(q.n_sessions) <= 8
    assert (q.tr, q.n_volumes, q.n_rating_runs, q.include_rest) == (p.tr, p.n_volumes, 3, True)
    assert q.atlas_name == "Seitzman300q80"
    assert TwinConfig.quick(coupling_gain=2.0).coupling_gain == 2.0
    # the probe's encoding: one coupling signal (modules of 8 are too small to split)
    assert (q.module_size, q.n_coupling_signals, q.coupling_gain, q.session_gain_sd) == (8, 1, 0.8, 0.0)


def test_every_effect_knob_is_a_config_field():
    names = {f.name for f in dataclasses.fields(TwinConfig)}
    assert {
        "coupling_gain", "lag_tr", "module_size", "n_coupling_signals", "module_networks",
        "session_gain_sd",
        "module_dropout", "n_nuisance_modules", "nuisance_gain", "univariate_gain", "pain_mean",
        "session_sd", "run_shift", "within_run_sd", "motion_pain_slope", "motion_artifact_gain",
    } <= names


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"n_sessions": (3,)}, "one entry per participant"),
        ({"module_networks": ((("Visual",), ("DefaultMode",)), (("Auditory",), ("Reward",)))}, "excluded"),
        ({"n_volumes": 1400}, "rating period"),
        ({"run_shift": (0.0, 0.1)}, "run_shift"),
        ({"module_dropout": 1.0}, "module_dropout"),
        ({"coupling_gain": -1.0}, "coupling_gain"),
    ],
)
def test_invalid_configs_are_rejected(overrides, match):
    with pytest.raises(ParameterError, match=match):
        TwinConfig.quick(**overrides)


# ---------------------------------------------------------------------------------------------
# layout
# ---------------------------------------------------------------------------------------------


def test_top_level_files(twin):
    desc = json.loads((twin / "dataset_description.json").read_text())
    assert desc["BIDSVersion"] == "1.9.0" and desc["DatasetType"] == "raw"
    assert desc["GeneratedBy"][0]["Name"] == "deipp_core digital twin"
    assert "Version" in desc["GeneratedBy"][0]
    dt = desc["DeippTwin"]
    assert (dt["seed"], dt["scale"], dt["null"]) == (0, "quick", False)
    assert set(dt["config"]) == {f.name for f in dataclasses.fields(TwinConfig)}
    assert pd.read_csv(twin / "participants.tsv", sep="\t")["participant_id"].tolist() == ["sub-01", "sub-02"]
    assert "SIMULATED" in (twin / "README").read_text()
    for name in (PIPELINE_NAME, GROUNDTRUTH_PIPELINE_NAME):
        d = json.loads((twin / "derivatives" / name / "dataset_description.json").read_text())
        assert d["DatasetType"] == "derivative"


def test_sessions_are_numbered_without_gaps(twin):
    for sub, n in zip(QUICK.participants, QUICK.n_sessions):
        assert _sessions(twin, sub) == [f"ses-{k:02d}" for k in range(1, n + 1)]
        assert sorted(p.name for p in (_der(twin) / f"sub-{sub}").iterdir()) == _sessions(twin, sub)
        table = pd.read_csv(twin / f"sub-{sub}" / f"sub-{sub}_sessions.tsv", sep="\t")
        assert table["session_id"].tolist() == _sessions(twin, sub)
        assert pd.to_datetime(table["acq_time"]).is_monotonic_increasing


def test_raw_func_files_of_a_session(twin):
    func = twin / "sub-02" / "ses-03" / "func"
    names = sorted(p.name for p in func.iterdir())
    assert names == sorted(
        [f"sub-02_ses-03_task-rating_run-{r}_{s}" for r in (1, 2, 3) for s in ("bold.json", "resp.tsv")]
        + ["sub-02_ses-03_task-rest_bold.json"]
    )
    side = json.loads((func / "sub-02_ses-03_task-rating_run-2_bold.json").read_text())
    assert side == {"RepetitionTime": 0.46, "TaskName": "rating"}
    assert json.loads((func / "sub-02_ses-03_task-rest_bold.json").read_text())["TaskName"] == "rest"


def test_resp_file_has_two_numeric_columns_and_no_header(twin):
    path = twin / "sub-01" / "ses-01" / "func" / "sub-01_ses-01_task-rating_run-1_resp.tsv"
    first = path.read_text().splitlines()[0].split("\t")
    assert len(first) == 2 and all(float(v) >= 0 for v in first)
    resp = np.loadtxt(path)
    assert resp.ndim == 2 and resp.shape[1] == 2


def test_derivative_files_of_a_session(twin):
    func = _der(twin) / "sub-01" / "ses-02" / "func"
    stems = [f"sub-01_ses-02_task-rating_run-{r}" for r in (1, 2, 3)] + ["sub-01_ses-02_task-rest"]
    expected = set()
    for s in stems:
        expected |= {
            f"{s}_atlas-{ATLAS}_timeseries.tsv.gz", f"{s}_atlas-{ATLAS}_timeseries.json",
            f"{s}_desc-confounds_timeseries.tsv", f"{s}_desc-confounds_timeseries.json",
        }
    assert {p.name for p in func.iterdir()} == expected
    for s in stems:
        assert json.loads((func / f"{s}_atlas-{ATLAS}_timeseries.json").read_text())["RepetitionTime"] == 0.46


def test_atlas_table_is_written_with_the_run_columns(twin):
    atlas = _atlas(twin)
    assert list(atlas.columns) == list(ATLAS_COLUMNS)
    assert len(atlas) == 80 and atlas["index"].tolist() == list(range(80))
    assert set(atlas["included"]) == {0, 1}
    assert (atlas["included"] == (atlas["network"] != "Visual").astype(int)).all()
    with gzip.open(_der(twin) / "sub-01/ses-01/func" / f"sub-01_ses-01_task-rest_atlas-{ATLAS}_timeseries.tsv.gz", "rt") as fh:
        assert fh.readline().rstrip("\n").split("\t") == atlas["name"].tolist()


def test_every_run_has_1304_volumes_and_consistent_confounds(twin):
    for sub in QUICK.participants:
        for ses in _sessions(twin, sub)[:2]:
            for run in (None, 1, 2, 3):
                r = _run(twin, sub, ses, run)
                assert r["bold"].shape == (1304, 80) and np.isfinite(r["bold"]).all()
                conf = r["conf"]
                assert list(conf.columns) == [*MOTION_COLUMNS, "framewise_displacement", "censor"]
                assert len(conf) == 1304 and len(r["pain"]) == 1304
                assert set(conf["censor"]) <= {0, 1}
                fd = conf["framewise_displacement"].to_numpy()
                assert fd[0] == 0.0
                assert ((fd <= 0.15) == conf["censor"].astype(bool)).all()
                # the stored FD is the censoring FD of the stored motion (low-pass 0.1 Hz, 50 mm)
                np.testing.assert_allclose(framewise_displacement(conf, 0.46), fd, rtol=1e-5, atol=1e-7)
                assert (conf.loc[0, list(MOTION_COLUMNS)] == 0).all()  # relative to the first volume


def test_ground_truth_files(twin):
    atlas = _atlas(twin)
    k_sig = QUICK.n_coupling_signals
    group_sizes = [len(range(k, QUICK.module_size, k_sig)) for k in range(k_sig)]  # per module
    n_edges = sum(math.comb(2 * g, 2) for g in group_sizes)
    for sub, nets in zip(QUICK.participants, QUICK.module_networks):
        edges = pd.read_csv(_gt(twin) / f"sub-{sub}" / f"sub-{sub}_desc-groundtruth_edges.tsv", sep="\t")
        assert list(edges.columns) == ["parcel_i", "parcel_j", "sign", "weight"]
        assert len(edges) == n_edges
        assert (edges["parcel_i"] < edges["parcel_j"]).all() and not edges.duplicated(["parcel_i", "parcel_j"]).any()
        assert set(edges["sign"]) == {-1, 1}
        assert np.allclose(edges["weight"], QUICK.coupling_gain)
        meta = _meta(twin, sub)
        assert (meta["lag_tr"], meta["lag_s"], meta["gain"], meta["null"], meta["seed"]) == (
            13, 5.98, QUICK.coupling_gain, False, 0)
        a, b = set(meta["modules"]["A"]), set(meta["modules"]["B"])
        assert len(a) == len(b) == QUICK.module_size and not a & b
        # coupling groups: a partition of A ∪ B, each with an equal share of A and of B; edges
        # (and only edges) join parcels of the same group
        groups = [set(g) for g in meta["coupling_groups"]]
        assert meta["n_coupling_signals"] == len(groups) == k_sig
        assert set().union(*groups) == a | b and sum(map(len, groups)) == len(a | b)
        assert sorted((len(g & a), len(g & b)) for g in groups) == sorted((n, n) for n in group_sizes)
        group_of = {p: k for k, g in enumerate(groups) for p in g}
        pairs = edges[["parcel_i", "parcel_j"]].itertuples(index=False)
        assert all(group_of[i] == group_of[j] for i, j in pairs)
        # signs: + within A and within B, - between
        for i, j, s in edges[["parcel_i", "parcel_j", "sign"]].itertuples(index=False):
            assert s == (1 if (i in a) == (j in a) else -1)
        # modules come from the configured networks and never include excluded (visual) parcels
        assert set(atlas.loc[sorted(a), "network"]) <= set(nets[0])
        assert set(atlas.loc[sorted(b), "network"]) == set(nets[1])
        assert atlas.loc[sorted(a | b), "included"].all()
        assert meta["module_names"]["A"] == atlas.loc[meta["modules"]["A"], "name"].tolist()
        assert set(meta["networks"]) == set(nets[0]) | set(nets[1])
        for ses in _sessions(twin, sub):
            assert (_gt(twin) / f"sub-{sub}" / ses / f"sub-{sub}_{ses}_task-rating_run-1_desc-latentpain_timeseries.tsv").is_file()


# ---------------------------------------------------------------------------------------------
# behaviour
# ---------------------------------------------------------------------------------------------


def test_ratings_behave_like_a_hand_held_scale(twin):
    for ses, run, r in _rating_runs(twin, "01"):
        t, v = r["resp"][:, 0], r["resp"][:, 1]
        dt = np.diff(t)
        assert 0 <= t[0] < 0.05 and 599.73 < t[-1] < 600  # covers every volume's time
        assert (dt > 0).all() and np.median(dt) == pytest.approx(1 / 60, rel=0.02) and dt.std() > 1e-4
        assert v[0] == 0.0  # the cursor starts at the left end
        assert v.min() >= 0 and v.max() <= 1
        np.testing.assert_allclose(v * 1000, np.round(v * 1000), atol=1e-6)  # quantised to 1/1000
        assert (np.diff(v) == 0).mean() > 0.7  # the hand rests between strokes
        felt = np.interp(t, QUICK.volume_times(), r["pain"])
        late = t > 30
        assert np.abs(v[late] - felt[late]).mean() < 0.03  # tracks the felt pain after the approach
        reach = np.argmax(np.abs(v - felt) < 0.03)
        assert 1.0 < t[reach] < 6.5  # reaches the felt level within 2-6 s


def test_ratings_fluctuate_slowly_within_runs(twin):
    acf1, acf4 = [], []
    for sub in QUICK.participants:
        for _, _, r in _rating_runs(twin, sub):
            y = _rating_on_tr_grid(r["resp"])[TRIM:]
            y = y - y.mean()
            acf1.append((y[130:] * y[:-130]).sum() / (y * y).sum())  # 1 min = 130 TR
            acf4.append((y[520:] * y[:-520]).sum() / (y * y).sum())
            assert y.std() > 0.03
    assert np.mean(acf1) > 0.06
    assert np.mean(acf1) > np.mean(acf4)


def test_ratings_differ_between_runs_and_sessions(twin):
    for sub in QUICK.participants:
        means = pd.DataFrame(
            [(ses, run, _rating_on_tr_grid(r["resp"])[TRIM:].mean()) for ses, run, r in _rating_runs(twin, sub)],
            columns=["ses", "run", "m"],
        )
        assert means.groupby("ses")["m"].mean().var() > 1e-4  # between sessions
        assert means.groupby("ses")["m"].var().mean() > 1e-4  # between runs of a session


def test_session_levels_drift_as_an_ar1_across_sessions():
    import deipp_core.data.atlas as atlas_mod

    config = TwinConfig.quick(n_sessions=(2000, 5))
    plan = twin_mod._make_plan(config, atlas_mod.seitzman_subset(80), 0, seed=1)
    lvl = plan.session_level
    assert lvl.mean() == pytest.approx(config.pain_mean[0], abs=0.01)
    assert lvl.std() == pytest.approx(config.session_sd, rel=0.1)
    assert np.corrcoef(lvl[1:], lvl[:-1])[0, 1] == pytest.approx(config.session_phi, abs=0.06)
    shifts = plan.run_shift.mean(axis=0)
    np.testing.assert_allclose(shifts, config.run_shift, atol=0.01)  # run 2 is raised


def test_latent_pain_is_an_ou_process_with_the_configured_spread(rng):
    c = TwinConfig.quick()
    runs = np.array([simulate_latent_pain(rng, c, 0.5) for _ in range(200)])
    assert runs.min() >= 0 and runs.max() <= 1
    assert runs.std(axis=1).mean() == pytest.approx(c.within_run_sd, rel=0.25)
    x = runs - runs.mean(axis=1, keepdims=True)
    r1 = (x[:, 130:] * x[:, :-130]).sum() / (x * x).sum()
    assert 0.1 < r1 < 0.4  # exp(-1) minus the finite-length bias


def test_rest_pain_stays_near_the_session_level(twin):
    meta = _meta(twin, "02")
    for ses in _sessions(twin, "02"):
        r = _run(twin, "02", ses, None)
        assert r["pain"].mean() == pytest.approx(meta["session_level"][ses[4:]], abs=0.06)
        assert r["pain"].std() < 0.08
        assert not list((twin / "sub-02" / ses / "func").glob("*task-rest*resp*"))


def test_simulate_rating_tracks_a_step_in_felt_pain(rng):
    c = TwinConfig.quick()
    grid = np.arange(-10, 610, 0.46)
    felt = np.where(grid < 300, 0.2, 0.7)
    r = simulate_rating(rng, c, grid, felt)
    t, v = r[:, 0], r[:, 1]
    assert v[0] == 0
    assert np.abs(v[(t > 10) & (t < 299)] - 0.2).max() <= 0.02 + 4 * c.rating_landing_sd
    assert np.abs(v[t > 302] - 0.7).max() <= 0.02 + 4 * c.rating_landing_sd


# ---------------------------------------------------------------------------------------------
# brain
# ---------------------------------------------------------------------------------------------


def test_bold_has_network_structure(twin):
    atlas = _atlas(twin)
    net = atlas["network"].to_numpy()
    same = (net[:, None] == net[None, :]) & (net[:, None] != "unassigned")
    off = ~np.eye(len(net), dtype=bool)
    within, between = [], []
    for sub in QUICK.participants:
        r = _run(twin, sub, "ses-01", 1)
        c = np.corrcoef(r["bold"].T)
        within.append(c[same & off].mean())
        between.append(c[~same & off].mean())
    assert np.mean(within) > 0.25
    assert np.mean(within) - np.mean(between) > 0.2
    assert np.mean(between) > 0.0  # the global signal


def test_bold_has_realistic_temporal_autocorrelation(twin):
    bold = _run(twin, "01", "ses-02", 2)["bold"]
    b = bold - bold.mean(0)
    r1 = (b[1:] * b[:-1]).sum(0) / (b * b).sum(0)
    assert 0.8 < np.median(r1) < 0.95
    r20 = (b[20:] * b[:-20]).sum(0) / (b * b).sum(0)  # ~9 s later the AR(1) has decayed
    assert np.median(r20) < 0.3


# ---------------------------------------------------------------------------------------------
# motion
# ---------------------------------------------------------------------------------------------


def test_motion_has_fd_spikes_and_plausible_censoring(twin):
    keep, raw = [], []
    for sub in QUICK.participants:
        for _, _, r in _rating_runs(twin, sub):
            keep.append(r["conf"]["censor"].to_numpy())
            raw.append(framewise_displacement(r["conf"], 0.46, lowpass_hz=None))
    frac = 1 - np.concatenate(keep).mean()
    assert 0.01 < frac < 0.08
    raw = np.concatenate(raw)
    assert raw.max() > 8 * np.median(raw)  # spikes
    assert 0.05 < np.median(raw) < 0.3  # unfiltered FD carries respiration


def test_motion_correlates_mildly_with_pain(twin, null_twin):
    def pooled_r(root):
        fd, pain = [], []
        for sub in QUICK.participants:
            for _, _, r in _rating_runs(root, sub):
                fd.append(framewise_displacement(r["conf"], 0.46, lowpass_hz=None))
                pain.append(r["pain"])
        return np.corrcoef(np.concatenate(fd), np.concatenate(pain))[0, 1]

    r, r_null = pooled_r(twin), pooled_r(null_twin)
    # same random draws: the difference isolates the pain-dependence of the movement rate
    assert r > r_null
    assert abs(r) < 0.3


def test_movements_are_more_frequent_with_pain(rng):
    c = TwinConfig.quick()
    seeds = range(60)

    def total_event_fd(level, dependent=True):
        return sum(
            simulate_motion(np.random.default_rng(s), c, np.full(c.n_volumes, level), pain_dependent=dependent)[1].sum()
            for s in seeds
        )

    ratio = total_event_fd(0.9) / total_event_fd(0.1)
    assert 1.15 < ratio < 1.9  # exp(ln(1.6) * 0.8) = 1.46
    assert total_event_fd(0.9, False) == total_event_fd(0.1, False)


def test_simulated_motion_units(rng):
    c = TwinConfig.quick()
    motion, event_fd = simulate_motion(rng, c, np.full(c.n_volumes, 0.5))
    assert motion.shape == (c.n_volumes, 6) and (motion[0] == 0).all()
    assert np.abs(motion[:, :3]).max() < 20  # mm
    assert np.abs(motion[:, 3:]).max() < 0.4  # radians
    assert (event_fd >= 0).all()


# ---------------------------------------------------------------------------------------------
# pain encoding, null mode and lag
# ---------------------------------------------------------------------------------------------


def test_planted_edges_encode_lagged_pain(twin):
    n = len(_atlas(twin))
    for sub in QUICK.participants:
        r = _oracle_vs_lagged_pain(twin, sub, _module_signs(_meta(twin, sub), n))
        assert r > 0.08, sub  # 0.12-0.18 over seeds 0-4; null twins stay within ±0.05


def test_participants_pain_edges_barely_overlap(twin):
    n = len(_atlas(twin))
    e1 = pd.read_csv(_gt(twin) / "sub-01" / "sub-01_desc-groundtruth_edges.tsv", sep="\t")
    e2 = pd.read_csv(_gt(twin) / "sub-02" / "sub-02_desc-groundtruth_edges.tsv", sep="\t")
    pairs1 = set(zip(e1["parcel_i"], e1["parcel_j"]))
    pairs2 = set(zip(e2["parcel_i"], e2["parcel_j"]))
    assert len(pairs1 & pairs2) / len(pairs1) < 0.05
    m1, m2 = _meta(twin, "01"), _meta(twin, "02")
    assert not set(m1["networks"]) & set(m2["networks"])  # disjoint pain networks (lesson 4)
    # one participant's planted edges do not track the other's pain
    # (a pooled frame-wise r of slow pain has a standard error of ~0.02 here)
    assert abs(_oracle_vs_lagged_pain(twin, "02", _module_signs(m1, n))) < 0.08
    assert abs(_oracle_vs_lagged_pain(twin, "01", _module_signs(m2, n))) < 0.08


def test_null_twin_has_the_same_behaviour_and_no_pain_coupling(twin, null_twin):
    n = len(_atlas(twin))
    for sub in QUICK.participants:
        assert abs(_oracle_vs_lagged_pain(null_twin, sub, _module_signs(_meta(null_twin, sub), n))) < 0.08
        meta = _meta(null_twin, sub)
        assert meta["null"] is True and meta["gain"] == 0.0
        assert meta["modules"] == _meta(twin, sub)["modules"]
        edges = pd.read_csv(_gt(null_twin) / f"sub-{sub}" / f"sub-{sub}_desc-groundtruth_edges.tsv", sep="\t")
        assert list(edges.columns) == ["parcel_i", "parcel_j", "sign", "weight"] and edges.empty
    rel = "sub-01/ses-02/func/sub-01_ses-02_task-rating_run-3_resp.tsv"
    assert (twin / rel).read_bytes() == (null_twin / rel).read_bytes()
    rel = f"{GROUNDTRUTH_PIPELINE_NAME}/sub-01/ses-02/sub-01_ses-02_task-rating_run-3_desc-latentpain_timeseries.tsv"
    assert (twin / "derivatives" / rel).read_bytes() == (null_twin / "derivatives" / rel).read_bytes()
    assert json.loads((null_twin / "dataset_description.json").read_text())["DeippTwin"]["null"] is True
    a = _run(twin, "01", "ses-02", 3)["bold"]
    b = _run(null_twin, "01", "ses-02", 3)["bold"]
    assert not np.allclose(a, b)
    other = np.setdiff1d(np.arange(n), np.flatnonzero(_module_signs(_meta(twin, "01"), n).any(axis=0)))
    # outside the modules only the motion artefact differs (pain-dependent movement rate)
    assert np.corrcoef(a[:, other].ravel(), b[:, other].ravel())[0, 1] > 0.95


def test_cofluctuation_follows_pain_with_a_13_tr_lag(tmp_path):
    # fast pain fluctuations make the lag identifiable; everything else is the quick twin
    config = TwinConfig.quick(
        n_sessions=(2, 1), within_run_tau_s=3.0, within_run_smooth_s=0.0, within_run_sd=0.25, pain_mean=(0.5, 0.5)
    )
    root = generate_twin(tmp_path / "lag", config, seed=5)
    signs = _module_signs(_meta(root, "01"), len(_atlas(root)))
    lags = np.arange(0, 31)
    r = _oracle_vs_lagged_pain(root, "01", signs, lags=lags.tolist())
    assert abs(int(lags[np.argmax(r)]) - 13) <= 1
    assert max(r) > 0.1


# ---------------------------------------------------------------------------------------------
# encoding that varies between sessions (knobs for the training-size curve)
# ---------------------------------------------------------------------------------------------


def test_session_variability_knobs_are_written_to_the_ground_truth(tmp_path):
    config = TwinConfig.quick(
        n_sessions=(3, 2), session_gain_sd=0.5, module_dropout=0.25, n_nuisance_modules=2, univariate_gain=0.1
    )
    root = generate_twin(tmp_path / "knobs", config, seed=2)
    meta = _meta(root, "01")
    gains = list(meta["session_gain"].values())
    assert len(gains) == 3 and len(set(gains)) == 3 and all(g > 0 for g in gains)
    module = set(meta["modules"]["A"]) | set(meta["modules"]["B"])
    for parts in meta["session_participation"].values():
        assert set(parts) <= module and len(parts) < len(module) + 1
    assert sum(len(p) for p in meta["session_participation"].values()) < 3 * len(module)
    assert len(meta["nuisance_modules"]) == 2
    for nm in meta["nuisance_modules"]:
        assert not set(nm) & module
    edges = pd.read_csv(_gt(root) / "sub-01" / "sub-01_desc-groundtruth_edges.tsv", sep="\t")
    assert np.allclose(edges["weight"], config.coupling_gain * 0.75**2)


def test_coupling_groups_carry_independent_signals(tmp_path):
    """Pairs within a coupling group follow lagged pain; pairs across two groups do not."""
    config = TwinConfig.quick(participants=("01",), n_sessions=(2,), pain_mean=(0.45,),
                              module_networks=QUICK.module_networks[:1], module_size=12,
                              n_coupling_signals=2, coupling_gain=1.5)
    root = generate_twin(tmp_path / "groups", config, seed=3)
    signs = _module_signs(_meta(root, "01"), len(_atlas(root)))
    assert signs.shape[0] == 2 and not (signs[0] * signs[1]).any()
    within = _oracle_vs_lagged_pain(root, "01", signs)
    runs = list(_rating_runs(root, "01"))
    across = []
    for _, _, r in runs:
        z = (r["bold"] - r["bold"].mean(0)) / r["bold"].std(0, ddof=1)
        across.append(((z @ signs[0]) * (z @ signs[1]))[LAG:])
    pain = np.concatenate([r["pain"][: len(r["pain"]) - LAG] for _, _, r in runs])
    r_across = float(np.corrcoef(np.concatenate(across), pain)[0, 1])
    assert within > 0.1 and abs(r_across) < 0.05, (within, r_across)


@pytest.mark.parametrize("k", [0, 13])
def test_coupling_signals_must_fit_the_modules(k):
    with pytest.raises(ParameterError, match="n_coupling_signals"):
        TwinConfig.quick(module_size=12, n_coupling_signals=k)


# ---------------------------------------------------------------------------------------------
# determinism and atomic writes
# ---------------------------------------------------------------------------------------------

TINY = TwinConfig.quick(n_sessions=(1, 1))


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = _files(generate_twin(tmp_path / "a", TINY, seed=7))
    b = _files(generate_twin(tmp_path / "b", TINY, seed=7))
    assert a == b
    c = _files(generate_twin(tmp_path / "c", TINY, seed=8))
    assert a.keys() == c.keys()
    ts = f"derivatives/{PIPELINE_NAME}/sub-01/ses-01/func/sub-01_ses-01_task-rating_run-1_atlas-{ATLAS}_timeseries.tsv.gz"
    assert a[ts] != c[ts]
    assert a["sub-01/ses-01/func/sub-01_ses-01_task-rating_run-1_resp.tsv"] != c[
        "sub-01/ses-01/func/sub-01_ses-01_task-rating_run-1_resp.tsv"
    ]


def test_output_does_not_depend_on_n_jobs(tmp_path):
    config = TwinConfig.quick(n_sessions=(1, 1))
    a = _files(generate_twin(tmp_path / "serial", config, seed=3, n_jobs=1))
    b = _files(generate_twin(tmp_path / "parallel", config, seed=3, n_jobs=2))
    assert a == b


def test_existing_root_is_kept_unless_overwrite(tmp_path):
    root = generate_twin(tmp_path / "t", TINY, seed=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_twin(root, TINY, seed=2)
    generate_twin(root, TINY, seed=2, overwrite=True)
    assert json.loads((root / "dataset_description.json").read_text())["DeippTwin"]["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no temporary siblings left


def _failing_writer(monkeypatch, after: int):
    calls = {"n": 0}
    real = twin_mod._write_run

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(twin_mod, "_write_run", flaky)


def test_a_crash_leaves_no_half_written_twin(tmp_path, monkeypatch):
    _failing_writer(monkeypatch, after=3)
    with pytest.raises(OSError, match="simulated"):
        generate_twin(tmp_path / "t", TINY, seed=1)
    assert not (tmp_path / "t").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_crash_during_overwrite_keeps_the_old_twin(tmp_path, monkeypatch):
    root = generate_twin(tmp_path / "t", TINY, seed=1)
    before = _files(root)
    _failing_writer(monkeypatch, after=5)
    with pytest.raises(OSError, match="simulated"):
        generate_twin(root, TINY, seed=2, overwrite=True)
    assert _files(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]
