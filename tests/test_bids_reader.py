"""The BIDS reader: round trip on a tiny data set, every malformed input as one clear error, read-only."""

from __future__ import annotations

import builtins
import doctest
import gzip
import io
import json
import os
import pathlib
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deipp_core.data import bids
from deipp_core.data.bids import (
    SessionNumberingWarning,
    min_volumes,
    parse_bids_filename,
    read_dataset,
    read_ground_truth,
    read_rating,
)
from deipp_core.data.dataset import MOTION_COLUMNS
from deipp_core.exceptions import (
    AllFramesCensoredError,
    DataFormatError,
    DataLayoutError,
    ParameterError,
)

TR = 0.46
N_VOL = 140  # > min_volumes(0.46) = 129
PARCELS = ("L_A", "L_B", "R_A", "R_B")


# --------------------------------------------------------------------------------------------------
# A tiny writer of the layout (independent of deipp_core.data.twin on purpose)
# --------------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _rating_frame(rng, n_vol: int = N_VOL, tr: float = TR) -> pd.DataFrame:
    t = np.arange(0.0, n_vol * tr + 5.0, 0.25)
    v = np.clip(0.5 + 0.3 * np.sin(t / 7.0) + 0.01 * rng.standard_normal(t.size), 0, 1)
    return pd.DataFrame({"time": t, "value": v})


def write_tiny(
    root: Path,
    *,
    participants=("01",),
    sessions=("01", "02"),
    runs=(1, 2, 3),
    n_vol: int = N_VOL,
    tr: float = TR,
    rest: bool = True,
    twin: dict | None = None,
    atlas: str = "tiny",
    pipeline: str = "deipp-twin",
    seed: int = 0,
) -> Path:
    """Write a complete data set of the reader's layout and return its root."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    desc = {"Name": "tiny test data", "BIDSVersion": "1.9.0"}
    if twin is not None:
        desc["DeippTwin"] = twin
    _write_json(root / "dataset_description.json", desc)
    pd.DataFrame({"participant_id": [f"sub-{p}" for p in participants]}).to_csv(
        root / "participants.tsv", sep="\t", index=False
    )
    deriv = root / "derivatives" / pipeline
    _write_json(deriv / "dataset_description.json", {"Name": pipeline, "DatasetType": "derivative"})
    pd.DataFrame({
        "index": np.arange(1, len(PARCELS) + 1), "name": PARCELS, "network": ["A", "B", "A", "B"],
        "x": [-40.0, -20.0, 20.0, 40.0], "y": 0.0, "z": 10.0, "included": [1, 1, 1, 0],
    }).to_csv(deriv / f"atlas-{atlas}_dseg.tsv", sep="\t", index=False)
    for p in participants:
        for s in sessions:
            tasks = [("rating", r) for r in runs] + ([("rest", None)] if rest else [])
            for task, r in tasks:
                base = f"sub-{p}_ses-{s}_task-{task}" + (f"_run-{r}" if r is not None else "")
                func = root / f"sub-{p}" / f"ses-{s}" / "func"
                dfunc = deriv / f"sub-{p}" / f"ses-{s}" / "func"
                func.mkdir(parents=True, exist_ok=True)
                dfunc.mkdir(parents=True, exist_ok=True)
                _write_json(func / f"{base}_bold.json", {"RepetitionTime": tr, "TaskName": task})
                if task == "rating":
                    rating = _rating_frame(rng, n_vol, tr)
                    rating.to_csv(func / f"{base}_resp.tsv", sep="\t", header=False, index=False)
                ts = pd.DataFrame(rng.standard_normal((n_vol, len(PARCELS))), columns=PARCELS)
                ts.to_csv(dfunc / f"{base}_atlas-{atlas}_timeseries.tsv.gz", sep="\t", index=False)
                _write_json(dfunc / f"{base}_atlas-{atlas}_timeseries.json", {"RepetitionTime": tr})
                conf = pd.DataFrame(0.01 * rng.standard_normal((n_vol, 6)), columns=MOTION_COLUMNS)
                conf["framewise_displacement"] = np.abs(rng.standard_normal(n_vol)) * 0.05
                conf.loc[0, "framewise_displacement"] = 0.0
                conf["censor"] = (rng.random(n_vol) > 0.05).astype(int)
                conf.to_csv(dfunc / f"{base}_desc-confounds_timeseries.tsv", sep="\t", index=False)
    if twin is not None:
        for p in participants:
            gt = root / "derivatives" / bids.GROUND_TRUTH_PIPELINE / f"sub-{p}"
            gt.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"parcel_i": ["L_A"], "parcel_j": ["R_A"], "sign": [1], "weight": [0.5]}).to_csv(
                gt / f"sub-{p}_desc-groundtruth_edges.tsv", sep="\t", index=False)
            _write_json(gt / f"sub-{p}_desc-groundtruth.json", {"lag_tr": 13, "modules": ["A"]})
            for s in sessions:
                (gt / f"ses-{s}").mkdir(exist_ok=True)
                for task in [f"rating_run-{r}" for r in runs] + ["rest"]:
                    pd.DataFrame({"pain": rng.random(n_vol)}).to_csv(
                        gt / f"ses-{s}" / f"sub-{p}_ses-{s}_task-{task}_desc-latentpain_timeseries.tsv",
                        sep="\t", index=False)
    return root


def _func(root, p="01", s="01"):
    return root / f"sub-{p}" / f"ses-{s}" / "func"


def _dfunc(root, p="01", s="01", pipeline="deipp-twin"):
    return root / "derivatives" / pipeline / f"sub-{p}" / f"ses-{s}" / "func"


def _ts_path(root, run=1, s="01", p="01"):
    return _dfunc(root, p, s) / f"sub-{p}_ses-{s}_task-rating_run-{run}_atlas-tiny_timeseries.tsv.gz"


def _conf_path(root, run=1, s="01", p="01"):
    return _dfunc(root, p, s) / f"sub-{p}_ses-{s}_task-rating_run-{run}_desc-confounds_timeseries.tsv"


def _rating_path(root, run=1, s="01", p="01"):
    return _func(root, p, s) / f"sub-{p}_ses-{s}_task-rating_run-{run}_resp.tsv"


@pytest.fixture
def tiny(tmp_path):
    return write_tiny(tmp_path / "ds")


# --------------------------------------------------------------------------------------------------
# Round trip
# --------------------------------------------------------------------------------------------------


def test_doctests_of_the_module_pass():
    assert doctest.testmod(bids).failed == 0


def test_parse_bids_filename_handles_entities_suffix_and_double_extension():
    name = parse_bids_filename("/x/sub-01_ses-02_task-rating_run-3_atlas-S300_timeseries.tsv.gz")
    assert name.entities == {"sub": "01", "ses": "02", "task": "rating", "run": "3", "atlas": "S300"}
    assert (name.suffix, name.extension) == ("timeseries", ".tsv.gz")
    assert parse_bids_filename("participants.tsv") == ({}, "participants", ".tsv")


def test_reader_round_trips_every_value_the_writer_wrote(tiny):
    ds = read_dataset(tiny)
    assert ds.source == "bids" and not ds.is_simulated
    assert "(real data)" not in ds.description or "tiny" in ds.description
    assert list(ds.participants) == ["01"]
    part = ds["01"]
    assert part.sessions == ["01", "02"]
    assert [r.key for r in part.runs] == [
        "ses-01_task-rest", "ses-01_task-rating_run-1", "ses-01_task-rating_run-2", "ses-01_task-rating_run-3",
        "ses-02_task-rest", "ses-02_task-rating_run-1", "ses-02_task-rating_run-2", "ses-02_task-rating_run-3",
    ]
    run = part.rating_runs("01")[1]
    assert run.tr == pytest.approx(TR) and run.n_volumes == N_VOL
    expected = pd.read_csv(_ts_path(tiny, 2), sep="\t").to_numpy()
    np.testing.assert_array_equal(run.timeseries, expected)
    assert run.timeseries.dtype == np.float64
    conf = pd.read_csv(_conf_path(tiny, 2), sep="\t")
    np.testing.assert_array_equal(run.censor, conf["censor"].to_numpy().astype(bool))
    assert list(run.confounds.columns) == [*MOTION_COLUMNS, "framewise_displacement", "censor"]
    raw = pd.read_csv(_rating_path(tiny, 2), sep="\t", header=None).to_numpy()
    np.testing.assert_array_equal(run.rating[["time", "value"]].to_numpy(), raw)
    assert part.atlas["name"].tolist() == list(PARCELS)
    assert part.included.tolist() == [True, True, True, False]
    assert part.rest_run("02").rating is None
    assert ds.ground_truth == {}


def test_twin_is_recognised_described_as_simulated_and_ground_truth_is_read(tmp_path):
    root = write_tiny(tmp_path / "twin", twin={"seed": 3, "scale": "quick", "null": False})
    ds = read_dataset(root)
    assert ds.source == "twin" and ds.is_simulated
    assert ds.description == "digital twin (SIMULATED data; seed 3, quick scale)"
    gt = ds.ground_truth["01"]
    assert gt["edges"].columns.tolist() == ["parcel_i", "parcel_j", "sign", "weight"]
    assert gt["meta"]["lag_tr"] == 13
    assert sorted(gt["latent_pain"]) == [(s, r) for s in ("01", "02") for r in (1, 2, 3)]
    assert gt["latent_pain"][("02", 3)].shape == (N_VOL,)
    assert sorted(gt["latent_pain_rest"]) == ["01", "02"]
    assert read_ground_truth(root, "sub-01")["meta"] == gt["meta"]


def test_null_twin_says_so_in_its_description(tmp_path):
    root = write_tiny(tmp_path / "twin", sessions=("01",), twin={"seed": 0, "scale": "paper", "null": True})
    assert read_dataset(root).description == "digital twin (SIMULATED data; seed 0, paper scale, null mode: no pain signal)"


def test_real_data_description_names_ds006815_and_the_root(tmp_path):
    root = write_tiny(tmp_path / "ds006815")
    ds = read_dataset(root)
    assert ds.description.startswith(f"ds006815 (real data) at {root}")


def test_include_rest_false_reads_only_rating_runs(tiny):
    ds = read_dataset(tiny, include_rest=False)
    assert all(r.task == "rating" for r in ds["01"].runs) and len(ds["01"].runs) == 6


def test_rest_run_with_a_run_entity_is_read_as_the_session_rest(tiny):
    for path in list(tiny.rglob("*ses-01_task-rest_*")):
        path.rename(path.with_name(path.name.replace("task-rest_", "task-rest_run-1_")))
    rest = read_dataset(tiny)["01"].rest_run("01")
    assert rest is not None and rest.run is None and rest.key == "ses-01_task-rest"


def test_two_rest_runs_in_a_session_are_an_error(tiny):
    for path in list(_dfunc(tiny).glob("*task-rest_*")):
        shutil.copy(path, path.with_name(path.name.replace("task-rest_", "task-rest_run-2_")))
    with pytest.raises(DataLayoutError, match=r"ses-01: 2 resting-state runs \(\[None, 2\]\).*include_rest=False"):
        read_dataset(tiny)
    assert read_dataset(tiny, include_rest=False)["01"].rest_run("01") is None


def test_parallel_read_gives_the_same_data(tiny):
    a, b = read_dataset(tiny), read_dataset(tiny, n_jobs=2)
    for ra, rb in zip(a["01"].runs, b["01"].runs):
        assert ra.key == rb.key
        np.testing.assert_array_equal(ra.timeseries, rb.timeseries)
        pd.testing.assert_frame_equal(ra.confounds, rb.confounds)


def test_participants_are_selected_by_label_with_or_without_prefix(tmp_path):
    root = write_tiny(tmp_path / "ds", participants=("01", "02"), sessions=("01",))
    assert list(read_dataset(root, participants="sub-02").participants) == ["02"]
    assert list(read_dataset(root, participants=["02", "01"]).participants) == ["02", "01"]
    with pytest.raises(ParameterError, match=r"participant\(s\) 03 not in .*participants.tsv.*01, 02"):
        read_dataset(root, participants=["03"])


# --------------------------------------------------------------------------------------------------
# Flexible formats
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [("time", "value"), ("onset", "rating"), ("Time", "Rating")])
def test_rating_with_a_header_is_accepted(tmp_path, header):
    path = tmp_path / "r.tsv"
    pd.DataFrame({header[0]: [0.0, 0.5, 1.0], "other": [1, 2, 3], header[1]: [0.0, 0.2, 1.0]}).to_csv(
        path, sep="\t", index=False)
    df = read_rating(path)
    assert df.columns.tolist() == ["time", "value"] and df["value"].tolist() == [0.0, 0.2, 1.0]


def test_rating_as_gzipped_beh_file_in_a_beh_folder_is_found(tiny):
    for run in (1, 2, 3):
        src = _rating_path(tiny, run)
        dst = tiny / "sub-01" / "ses-01" / "beh" / src.name.replace("_resp.tsv", "_beh.tsv.gz")
        dst.parent.mkdir(exist_ok=True)
        with gzip.open(dst, "wb") as fh:
            fh.write(src.read_bytes())
        src.unlink()
    ds = read_dataset(tiny)
    assert ds["01"].rating_runs("01")[0].rating.shape[1] == 2


def test_space_separated_headerless_rating_is_accepted(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("0.0 0.1\n0.5 0.2\n1.0 0.3\n")
    assert read_rating(path)["value"].tolist() == [0.1, 0.2, 0.3]


def test_tr_is_inherited_from_a_top_level_sidecar(tiny):
    for path in tiny.rglob("*_bold.json"):
        path.unlink()
    for path in (tiny / "derivatives").rglob("*_timeseries.json"):
        path.unlink()
    _write_json(tiny / "task-rating_bold.json", {"RepetitionTime": TR})
    _write_json(tiny / "task-rest_bold.json", {"RepetitionTime": TR})
    assert read_dataset(tiny)["01"].runs[0].tr == TR


def test_first_framewise_displacement_may_be_na_as_fmriprep_writes_it(tiny):
    conf = pd.read_csv(_conf_path(tiny), sep="\t")
    conf["framewise_displacement"] = conf["framewise_displacement"].astype(object)
    conf.loc[0, "framewise_displacement"] = "n/a"
    conf.to_csv(_conf_path(tiny), sep="\t", index=False)
    assert read_dataset(tiny)["01"].rating_runs("01")[0].confounds["framewise_displacement"].iloc[0] == 0.0


def test_individual_atlas_table_takes_precedence(tiny):
    deriv = tiny / "derivatives" / "deipp-twin"
    table = pd.read_csv(deriv / "atlas-tiny_dseg.tsv", sep="\t")
    table["included"] = 1
    table.to_csv(deriv / "atlas-tiny_sub-01_dseg.tsv", sep="\t", index=False)
    assert read_dataset(tiny)["01"].included.all()


def test_included_column_is_optional(tiny):
    path = tiny / "derivatives" / "deipp-twin" / "atlas-tiny_dseg.tsv"
    pd.read_csv(path, sep="\t").drop(columns="included").to_csv(path, sep="\t", index=False)
    assert read_dataset(tiny)["01"].included.all()


def test_a_session_without_any_rating_run_is_skipped(tiny):
    (tiny / "sub-01" / "ses-03" / "anat").mkdir(parents=True)
    assert read_dataset(tiny)["01"].sessions == ["01", "02"]


def test_a_gap_in_session_numbers_warns_but_reads(tmp_path):
    root = write_tiny(tmp_path / "ds", sessions=("01", "03"))
    with pytest.warns(SessionNumberingWarning, match="01, 03"):
        ds = read_dataset(root)
    assert ds["01"].sessions == ["01", "03"]


def test_pipeline_is_auto_detected_and_ambiguity_names_the_candidates(tiny):
    other = tiny / "derivatives" / "fmriprep"
    shutil.copytree(tiny / "derivatives" / "deipp-twin", other)
    with pytest.raises(ParameterError, match=r"several derivative folders .*\(deipp-twin, fmriprep\).*pipeline="):
        read_dataset(tiny)
    assert read_dataset(tiny, pipeline="fmriprep")["01"].n_sessions == 2
    with pytest.raises(DataLayoutError, match=r"nope does not exist; derivatives/ holds: deipp-twin, fmriprep"):
        read_dataset(tiny, pipeline="nope")


def test_results_cache_and_ground_truth_are_not_mistaken_for_input(tmp_path):
    root = write_tiny(tmp_path / "ds", twin={"seed": 0})
    cache = root / "derivatives" / "deipp" / "sub-01"
    cache.mkdir(parents=True)
    shutil.copy(_ts_path(root), cache / _ts_path(root).name)
    assert read_dataset(root).source == "twin"


def test_atlas_ambiguity_is_an_error_and_atlas_selects(tiny):
    for run in (1, 2, 3):
        src = _ts_path(tiny, run)
        shutil.copy(src, src.with_name(src.name.replace("atlas-tiny", "atlas-other")))
    with pytest.raises(ParameterError, match=r"several atlases \(other, tiny\); pass atlas="):
        read_dataset(tiny)
    assert read_dataset(tiny, atlas="tiny")["01"].atlas.shape[0] == 4


# --------------------------------------------------------------------------------------------------
# Every malformed input: one clear error naming the file
# --------------------------------------------------------------------------------------------------


def _rewrite_rating(root, fn, run=1):
    path = _rating_path(root, run)
    df = pd.read_csv(path, sep="\t", header=None)
    fn(df)
    df.to_csv(path, sep="\t", header=False, index=False)


def _rewrite_ts(root, fn, run=1, s="01"):
    path = _ts_path(root, run, s)
    df = pd.read_csv(path, sep="\t")
    out = fn(df)
    (df if out is None else out).to_csv(path, sep="\t", index=False)


def _rewrite_conf(root, fn, run=1, s="01"):
    path = _conf_path(root, run, s)
    df = pd.read_csv(path, sep="\t")
    out = fn(df)
    (df if out is None else out).to_csv(path, sep="\t", index=False)


def _set_json(path, **kw):
    obj = json.loads(path.read_text())
    obj.update(kw)
    path.write_text(json.dumps(obj))


def _truncate_all(root, n):
    for path in (root / "derivatives").rglob("*_timeseries.tsv.gz"):
        pd.read_csv(path, sep="\t").iloc[:n].to_csv(path, sep="\t", index=False)
    for path in (root / "derivatives").rglob("*_desc-confounds_timeseries.tsv"):
        pd.read_csv(path, sep="\t").iloc[:n].to_csv(path, sep="\t", index=False)


def _write_bytes(path, data: bytes):
    path.write_bytes(data)


CASES = {
    "missing dataset_description": (
        lambda r: (r / "dataset_description.json").unlink(), DataLayoutError, r"dataset_description.json does not exist"),
    "missing participants.tsv": (
        lambda r: (r / "participants.tsv").unlink(), DataLayoutError, r"participants.tsv does not exist"),
    "listed participant without folder": (
        lambda r: (r / "participants.tsv").write_text("participant_id\nsub-01\nsub-02\n"),
        DataLayoutError, r"sub-02 does not exist, but participants.tsv lists sub-02"),
    "extra run-4": (
        lambda r: shutil.copy(_rating_path(r, 3), _rating_path(r, 4)),
        DataLayoutError, r"sub-01 ses-01: rating run\(s\) \[4\] found \(.*run-4_resp.tsv\).*exactly runs 1, 2, 3"),
    "extra run-4 in derivatives only": (
        lambda r: shutil.copy(_ts_path(r, 3), _ts_path(r, 4)), DataLayoutError, r"rating run\(s\) \[4\] found"),
    "session without all three runs": (
        lambda r: _rating_path(r, 2, "02").unlink(),
        DataLayoutError, r"sub-01 ses-02: rating run 2 has no rating file \(expected .*ses-02_task-rating_run-2_resp.tsv"),
    "rating without derivative time series": (
        lambda r: _ts_path(r, 3).unlink(),
        DataLayoutError, r"run-3: parcel time series .*run-3_atlas-tiny_timeseries.tsv.gz does not exist"),
    "missing confounds": (
        lambda r: _conf_path(r, 2).unlink(),
        DataLayoutError, r"run-2: no confounds .*expected .*run-2_desc-confounds_timeseries.tsv"),
    "two rating files for one run": (
        lambda r: shutil.copy(_rating_path(r), str(_rating_path(r)).replace("_resp", "_beh")),
        DataLayoutError, r"several files for the rating of sub-01 ses-01 run-1"),
    "empty rating file": (
        lambda r: _rating_path(r).write_text(""), DataFormatError, r"run-1_resp.tsv: the rating file is empty"),
    "unreadable gzipped rating": (
        lambda r: (_rating_path(r).unlink(), _write_bytes(Path(str(_rating_path(r)) + ".gz"), b"not gzip")),
        DataFormatError, r"run-1_resp.tsv.gz: the rating file cannot be read"),
    "three headerless columns": (
        lambda r: _rewrite_rating(r, lambda d: d.insert(2, 2, 0.0)),
        DataFormatError, r"run-1_resp.tsv: the rating file has 3 columns; expected two numeric columns"),
    "header without a value column": (
        lambda r: _rating_path(r).write_text("time\tcursor\n0\t0.1\n1\t0.2\n"),
        DataFormatError, r"header \['time', 'cursor'\] has no value/rating column"),
    "rating above 1": (
        lambda r: _rewrite_rating(r, lambda d: d.__setitem__(1, d[1] * 0 + 1.5)),
        DataFormatError, r"run-1_resp.tsv: ratings must lie in \[0, 1\]"),
    "rating below 0": (
        lambda r: _rewrite_rating(r, lambda d: d.loc.__setitem__((5, 1), -0.01), run=2),
        DataFormatError, r"run-2_resp.tsv: ratings must lie in \[0, 1\]; 1 do not .*data row 6"),
    "non-monotonic rating time": (
        lambda r: _rewrite_rating(r, lambda d: d.loc.__setitem__((10, 0), 0.0)),
        DataFormatError, r"run-1_resp.tsv: rating time must increase strictly, but data row 11 has time 0 after 2.25"),
    "NaN rating": (
        lambda r: _rewrite_rating(r, lambda d: d.loc.__setitem__((3, 1), np.nan)),
        DataFormatError, r"run-1_resp.tsv: 1 missing value\(s\) in the rating, first in data row 4"),
    "non-numeric rating": (
        lambda r: _rating_path(r).write_text("0\t0.1\n1\tabc\n"), DataFormatError, r"run-1_resp.tsv: cannot be read as"),
    "NaN in time series": (
        lambda r: _rewrite_ts(r, lambda d: d.loc.__setitem__((7, "R_A"), np.nan)),
        DataFormatError, r"timeseries.tsv.gz: 1 missing value\(s\) in the time series, first at volume 7 .*'R_A'"),
    "empty time series": (
        lambda r: _ts_path(r).write_bytes(gzip.compress(b"")), DataFormatError, r"timeseries.tsv.gz: the file is empty"),
    "NaN in confounds": (
        lambda r: _rewrite_conf(r, lambda d: d.loc.__setitem__((9, "rot_y"), np.nan)),
        DataFormatError, r"confounds_timeseries.tsv: 1 missing value\(s\) in the confounds, first at volume 9 \(0-based\), column 'rot_y'"),
    "confounds without censor": (
        lambda r: _rewrite_conf(r, lambda d: d.drop(columns="censor")),
        DataFormatError, r"confounds_timeseries.tsv: missing confound column\(s\) \['censor'\]"),
    "confounds without FD": (
        lambda r: _rewrite_conf(r, lambda d: d.drop(columns="framewise_displacement")),
        DataFormatError, r"missing confound column\(s\) \['framewise_displacement'\]"),
    "censor not 0/1": (
        lambda r: _rewrite_conf(r, lambda d: d.loc.__setitem__((2, "censor"), 2)),
        DataFormatError, r"column 'censor' must be 1 \(keep\) or 0 \(drop\); found 2"),
    "confounds of another length": (
        lambda r: _rewrite_conf(r, lambda d: d.iloc[:-1]),
        DataFormatError, r"confounds_timeseries.tsv: 139 rows, but the time series .* has 140 volumes"),
    "TR: raw sidecar vs derivative JSON": (
        lambda r: _set_json(_ts_path(r, 2).with_name(_ts_path(r, 2).name.replace(".tsv.gz", ".json")), RepetitionTime=0.5),
        DataFormatError, r"run-2: the TR disagrees between files: 0.46 s in .*run-2_bold.json but 0.5 s in .*run-2_atlas-tiny_timeseries.json"),
    "TR between runs": (
        lambda r: [_set_json(p, RepetitionTime=0.5) for p in r.rglob("*ses-02_task-rating_run-3*.json")],
        DataFormatError, r"sub-01: the TR differs between runs: 0.46 s in .* but 0.5 s in .*ses-02_task-rating_run-3"),
    "TR missing everywhere": (
        lambda r: [p.unlink() for p in list(r.rglob("*run-1*_bold.json")) + list(r.rglob("*run-1*_timeseries.json"))],
        DataLayoutError, r"run-1: no RepetitionTime found"),
    "TR not a number": (
        lambda r: _set_json(_func(r) / "sub-01_ses-01_task-rating_run-1_bold.json", RepetitionTime="0.46"),
        DataFormatError, r"run-1_bold.json: RepetitionTime must be a positive number of seconds, got '0.46'"),
    "too few volumes": (
        lambda r: _truncate_all(r, 100),
        AllFramesCensoredError, r"100 volumes, but at least 129 are needed \(ceil\(30/TR\) = 66 trimmed \+ 13 lag \+ 10 bins × 5 frames\)"),
    "header with a parcel missing": (
        lambda r: _rewrite_ts(r, lambda d: d.drop(columns="R_B")),
        DataFormatError, r"timeseries.tsv.gz: the header has 3 columns but the atlas lists 4 parcels"),
    "header with another name": (
        lambda r: _rewrite_ts(r, lambda d: d.rename(columns={"L_B": "L_X"})),
        DataFormatError, r"column 2 is 'L_X' but the atlas lists 'L_B' there"),
    "header in another order": (
        lambda r: _rewrite_ts(r, lambda d: d[["L_B", "L_A", "R_A", "R_B"]]),
        DataFormatError, r"column 1 is 'L_B' but the atlas lists 'L_A' there \(same names, different order\)"),
    "atlas table without network": (
        lambda r: (lambda p: pd.read_csv(p, sep="\t").drop(columns="network").to_csv(p, sep="\t", index=False))(
            r / "derivatives" / "deipp-twin" / "atlas-tiny_dseg.tsv"),
        DataFormatError, r"atlas-tiny_dseg.tsv: missing column\(s\) \['network'\]"),
    "atlas table missing": (
        lambda r: (r / "derivatives" / "deipp-twin" / "atlas-tiny_dseg.tsv").unlink(),
        DataLayoutError, r"no parcellation table for atlas 'tiny': expected .*atlas-tiny_dseg.tsv or .*atlas-tiny_sub-01_dseg.tsv"),
    "no derivatives": (
        lambda r: shutil.rmtree(r / "derivatives"), DataLayoutError, r"no folder under .*derivatives holds rating-run time series"),
    "duplicate participant": (
        lambda r: (r / "participants.tsv").write_text("participant_id\nsub-01\nsub-01\n"),
        DataFormatError, r"participant_id 'sub-01' occurs more than once"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_input_raises_one_clear_error(tiny, case):
    mutate, error, match = CASES[case]
    mutate(tiny)
    with pytest.raises(error, match=match) as info:
        read_dataset(tiny)
    assert "\n" not in str(info.value)


def test_runs_of_different_length_name_both_runs(tiny):
    _rewrite_ts(tiny, lambda d: d.iloc[:-3], run=2, s="02")
    _rewrite_conf(tiny, lambda d: d.iloc[:-3], run=2, s="02")
    with pytest.raises(DataFormatError, match=r"rating runs differ in length: 140 volumes in .*ses-01_task-rating_run-1.* "
                                              r"but 137 in .*ses-02_task-rating_run-2.*nvol once"):
        read_dataset(tiny)


def test_errors_are_raised_before_anything_is_returned_even_in_parallel(tiny):
    _rewrite_rating(tiny, lambda d: d.__setitem__(1, d[1] * 0 + 2.0), run=3)
    with pytest.raises(DataFormatError, match="ratings must lie in"):
        read_dataset(tiny, n_jobs=2)


# --------------------------------------------------------------------------------------------------
# Read-only and speed
# --------------------------------------------------------------------------------------------------


def forbid_writes(monkeypatch, root: Path) -> list:
    """Make every write-mode open of a path under ``root`` fail; return the list of attempts."""
    attempts: list = []
    root = str(root)

    def guard(original, mode_pos, mode_default="r"):
        def wrapper(*args, **kwargs):
            target = args[0] if args else kwargs.get("file", kwargs.get("filename"))
            mode = args[mode_pos] if len(args) > mode_pos else kwargs.get("mode", mode_default)
            if isinstance(mode, str) and any(c in mode for c in "wax+") and root in str(target):
                attempts.append((str(target), mode))
                raise PermissionError(f"write attempt on {target} ({mode})")
            return original(*args, **kwargs)
        return wrapper

    real_os_open = os.open

    def os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC) and root in str(path):
            attempts.append((str(path), flags))
            raise PermissionError(f"write attempt on {path}")
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guard(builtins.open, 1))
    monkeypatch.setattr(io, "open", guard(io.open, 1))
    monkeypatch.setattr(pathlib.Path, "open", guard(pathlib.Path.open, 1))
    monkeypatch.setattr(gzip, "open", guard(gzip.open, 1, "rb"))
    monkeypatch.setattr(gzip, "GzipFile", guard(gzip.GzipFile, 1, "rb"))
    monkeypatch.setattr(os, "open", os_open)
    return attempts


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_the_reader_never_opens_an_input_for_writing(tiny, monkeypatch):
    before = snapshot(tiny)
    attempts = forbid_writes(monkeypatch, tiny)
    for opener in (lambda: open(tiny / "x.tsv", "w"), lambda: (tiny / "x").open("a"),
                   lambda: gzip.open(tiny / "x.gz", "wt"), lambda: os.open(tiny / "x", os.O_WRONLY | os.O_CREAT)):
        with pytest.raises(PermissionError):  # the guard itself works
            opener()
    attempts.clear()
    # Without the parsed-run cache nothing at all is written; with it (the default), writes go only to
    # derivatives/deipp/cache (tests/test_data_cache.py).
    ds = read_dataset(tiny, use_cache=False)
    monkeypatch.undo()
    assert ds["01"].n_sessions == 2
    assert attempts == []
    assert snapshot(tiny) == before


def test_min_volumes_follows_the_rating_parameters():
    from deipp_core.ratings import RatingParams

    assert min_volumes(0.46) == 66 + 13 + 50
    assert min_volumes(1.0, RatingParams(trim_s=10.0, lag_tr=5, n_bins=(5,))) == 10 + 5 + 25


@pytest.mark.slow
def test_paper_scale_reading_speed(tmp_path):
    """One participant × 5 sessions at paper size (1304 × 300 per run); 220 runs ≈ 11 × this."""
    rng = np.random.default_rng(0)
    n_vol, n_par = 1304, 300
    names = [f"p{i:03d}" for i in range(n_par)]
    root = tmp_path / "big"
    write_tiny(root, sessions=("01",), n_vol=n_vol)
    deriv = root / "derivatives" / "deipp-twin"
    pd.DataFrame({"index": range(1, n_par + 1), "name": names, "network": "x", "x": 0.0, "y": 0.0, "z": 0.0}).to_csv(
        deriv / "atlas-tiny_dseg.tsv", sep="\t", index=False)
    template = pd.DataFrame(rng.standard_normal((n_vol, n_par)), columns=names)
    template.to_csv(tmp_path / "ts.tsv.gz", sep="\t", index=False, float_format="%.6g")
    for s in ("01", "02", "03", "04", "05"):
        if s != "01":
            shutil.copytree(root / "sub-01" / "ses-01", root / "sub-01" / f"ses-{s}")
            shutil.copytree(deriv / "sub-01" / "ses-01", deriv / "sub-01" / f"ses-{s}")
            for p in list((root / "sub-01" / f"ses-{s}").rglob("*")) + list((deriv / "sub-01" / f"ses-{s}").rglob("*")):
                p.rename(p.with_name(p.name.replace("ses-01", f"ses-{s}")))
        for p in (deriv / "sub-01" / f"ses-{s}" / "func").glob("*_timeseries.tsv.gz"):
            shutil.copy(tmp_path / "ts.tsv.gz", p)
    t0 = time.perf_counter()
    ds = read_dataset(root)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    read_dataset(root, n_jobs=2)
    parallel = time.perf_counter() - t0
    assert len(ds["01"].runs) == 20 and ds["01"].runs[0].timeseries.shape == (n_vol, n_par)
    print(f"\n20 runs of {n_vol}x{n_par}: serial {serial:.2f} s, 2 jobs {parallel:.2f} s; "
          f"220 runs ≈ {serial * 11:.1f} s serial, {parallel * 11:.1f} s with 2 jobs")
    assert serial < 30
