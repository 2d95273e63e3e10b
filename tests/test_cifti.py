"""CIFTI input: parcel means over grayordinates, grayordinate matching, and the reader's CIFTI mode."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nibabel import cifti2

from deipp_core.data import cifti
from deipp_core.data.bids import read_afni_motion, read_dataset
from deipp_core.exceptions import DataFormatError, DataLayoutError, ParameterError
from deipp_core.motion import framewise_displacement

TR = 0.46
N_VOL = 140
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


# --------------------------------------------------------------------------------------------------
# Tiny CIFTI files: 8 of 10 vertices per hemisphere (2 "medial wall" vertices left out) + 4 voxels
# --------------------------------------------------------------------------------------------------


def brain_axis(vertices=tuple(range(8)), nvertex=10, affine=AFFINE, voxels=True) -> cifti2.BrainModelAxis:
    ax = (cifti2.BrainModelAxis.from_surface(np.array(vertices), nvertex, "CortexLeft")
          + cifti2.BrainModelAxis.from_surface(np.array(vertices), nvertex, "CortexRight"))
    if voxels:
        mask = np.zeros((3, 3, 3), bool)
        mask[1, 1, :] = True
        mask[0, 0, 0] = True
        ax = ax + cifti2.BrainModelAxis.from_mask(mask, name="ThalamusLeft", affine=affine)
    return ax


def write_dtseries(path: Path, data: np.ndarray, axis: cifti2.BrainModelAxis, tr: float = TR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cifti2.Cifti2Image(np.asarray(data, np.float32), header=(cifti2.SeriesAxis(0, tr, data.shape[0]), axis))
    img.to_filename(str(path))
    return path


def write_dlabel(path: Path, ids, axis, table: dict[int, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = {0: ("???", (0.0, 0.0, 0.0, 0.0))} | {k: (v, (1.0, 0.0, 0.0, 1.0)) for k, v in table.items()}
    img = cifti2.Cifti2Image(np.asarray(ids, np.float32)[None, :], header=(cifti2.LabelAxis(["parc"], [labels]), axis))
    img.to_filename(str(path))
    return path


def write_dscalar(path: Path, ids, axis) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.atleast_2d(np.asarray(ids, np.float32))
    img = cifti2.Cifti2Image(ids, header=(cifti2.ScalarAxis([f"map{i}" for i in range(ids.shape[0])]), axis))
    img.to_filename(str(path))
    return path


# ids of the 20 grayordinates (8 left, 8 right, 4 voxels): parcels 3, 7, 12; 0 and NaN = none
IDS = np.array([3, 3, 3, 0, 7, 7, np.nan, 7,  12, 12, 0, 3, 3, 7, 7, 7,  12, 12, 0, 3], dtype=float)


def manual_means(data: np.ndarray, ids: np.ndarray) -> np.ndarray:
    keys = np.unique(ids[np.isfinite(ids) & (ids > 0)])
    return np.column_stack([data[:, ids == k].astype(np.float64).mean(axis=1) for k in keys])


@pytest.fixture
def data(rng):
    return rng.standard_normal((N_VOL, 20)).astype(np.float32)


def test_parcel_means_follow_ascending_ids_and_ignore_zero_and_nan(tmp_path, data):
    ax = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, ax)
    parc = cifti.load_parcellation(write_dscalar(tmp_path / "ids.dscalar.nii", IDS, ax))
    assert parc.labels["index"].tolist() == [3, 7, 12]
    assert parc.labels["name"].tolist() == ["parcel-3", "parcel-7", "parcel-12"]
    pmap = cifti.map_parcellation(parc, cifti.read_dtseries_info(dt).axis, dt)
    np.testing.assert_allclose(cifti.parcel_timeseries(dt, pmap), manual_means(data, IDS), rtol=1e-6)


def test_dlabel_names_come_from_the_label_table(tmp_path, data):
    ax = brain_axis()
    path = write_dlabel(tmp_path / "p.dlabel.nii", np.nan_to_num(IDS), ax, {3: "DMN_1", 7: "SAL_1", 12: "THA"})
    assert cifti.load_parcellation(path).labels["name"].tolist() == ["DMN_1", "SAL_1", "THA"]


def test_reading_in_chunks_gives_the_same_means(tmp_path, data, monkeypatch):
    ax = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, ax)
    pmap = cifti.map_parcellation(cifti.load_parcellation(write_dscalar(tmp_path / "i.dscalar.nii", IDS, ax)), ax, dt)
    whole = cifti.parcel_timeseries(dt, pmap)
    monkeypatch.setattr(cifti, "_CHUNK_ROWS", 17)
    np.testing.assert_array_equal(cifti.parcel_timeseries(dt, pmap), whole)


def test_dtseries_info_gives_grayordinates_length_and_tr(tmp_path, data):
    info = cifti.read_dtseries_info(write_dtseries(tmp_path / "r.dtseries.nii", data, brain_axis(), tr=0.8))
    assert (info.n_volumes, len(info.axis)) == (N_VOL, 20) and info.tr == pytest.approx(0.8)


def test_full_surface_parcellation_in_another_vertex_order_is_matched_by_vertex(tmp_path, data):
    """A 32k-style dlabel with the medial wall (all 10 vertices, reordered) onto a dtseries without it."""
    target = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, target)
    order = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])  # medial wall = vertices 8, 9
    full = brain_axis(vertices=order)
    ids = np.zeros(24)
    left, right = np.nan_to_num(IDS[:8]), np.nan_to_num(IDS[8:16])
    ids[:10] = np.concatenate([[0, 0], left[::-1]])  # vertex v sits at position 9 - v
    ids[10:20] = np.concatenate([[0, 0], right[::-1]])
    ids[20:] = IDS[16:]
    parc = cifti.load_parcellation(write_dlabel(tmp_path / "full.dlabel.nii", ids, full, {3: "a", 7: "b", 12: "c"}))
    pmap = cifti.map_parcellation(parc, target, dt)
    np.testing.assert_allclose(cifti.parcel_timeseries(dt, pmap), manual_means(data, np.nan_to_num(IDS)), rtol=1e-6)


def test_labelled_grayordinate_missing_from_the_dtseries_is_an_error(tmp_path, data):
    target = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, target)
    full = brain_axis(vertices=range(10))
    ids = np.concatenate([np.nan_to_num(IDS[:8]), [3, 0], np.nan_to_num(IDS[8:16]), [0, 0], IDS[16:]])
    parc = cifti.load_parcellation(write_dscalar(tmp_path / "p.dscalar.nii", ids, full))
    with pytest.raises(DataFormatError, match=r"1 labelled grayordinate\(s\) of the parcellation are not in the time "
                                              r"series \(\{'CORTEX_LEFT': 1\}\).*same grayordinate space"):
        cifti.map_parcellation(parc, target, dt)


def test_different_surface_mesh_is_an_error(tmp_path, data):
    target = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, target)
    parc = cifti.load_parcellation(write_dscalar(tmp_path / "p.dscalar.nii", IDS, brain_axis(nvertex=12)))
    with pytest.raises(DataFormatError, match=r"CORTEX_LEFT is on a 12-vertex mesh in the parcellation but a "
                                              r"10-vertex mesh in the time series"):
        cifti.map_parcellation(parc, target, dt)


def test_different_voxel_grid_is_an_error(tmp_path, data):
    target = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, target)
    parc = cifti.load_parcellation(write_dscalar(tmp_path / "p.dscalar.nii", IDS, brain_axis(affine=np.diag([3.0, 3, 3, 1]))))
    with pytest.raises(DataFormatError, match="subcortical voxel grids differ"):
        cifti.map_parcellation(parc, target, dt)


def test_dtseries_grayordinates_outside_the_parcellation_get_no_parcel(tmp_path, data):
    target = brain_axis()
    dt = write_dtseries(tmp_path / "run.dtseries.nii", data, target)
    cortex_only = brain_axis(voxels=False)  # as the Schaefer dlabel: no subcortical structures
    parc = cifti.load_parcellation(write_dscalar(tmp_path / "p.dscalar.nii", IDS[:16], cortex_only))
    pmap = cifti.map_parcellation(parc, target, dt)
    ids = np.concatenate([IDS[:16], np.zeros(4)])
    assert pmap.n_parcels == 3 and pmap.counts.tolist() == [5, 6, 2]
    np.testing.assert_allclose(cifti.parcel_timeseries(dt, pmap), manual_means(data, ids), rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p, ax: write_dlabel(p.with_suffix(".dlabel.nii"), np.nan_to_num(IDS), ax, {3: "a", 7: "b", 12: "c", 20: "unused"}),
         r"1 label\(s\) of the label table have no grayordinate \(ids \[20\], names \['unused'\]\)"),
        (lambda p, ax: write_dscalar(p, np.where(IDS == 3, 3.5, IDS), ax), r"parcel ids must be non-negative integers.*3.5"),
        (lambda p, ax: write_dscalar(p, np.where(IDS == 3, -3, IDS), ax), r"parcel ids must be non-negative integers.*-3"),
        (lambda p, ax: write_dscalar(p, np.vstack([IDS, IDS]), ax), r"must hold exactly one map .* found 2"),
        (lambda p, ax: write_dscalar(p, np.zeros(20), ax), r"no grayordinate carries a parcel id"),
    ],
    ids=["unused label", "non-integer", "negative", "two maps", "empty"],
)
def test_malformed_parcellation_is_an_error(tmp_path, make, match):
    path = make(tmp_path / "p.dscalar.nii", brain_axis())
    with pytest.raises(DataFormatError, match=match):
        cifti.load_parcellation(path)


def test_non_cifti_files_are_rejected_with_their_name(tmp_path):
    nifti = tmp_path / "x.nii"
    nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).to_filename(str(nifti))
    with pytest.raises(DataFormatError, match=r"x.nii: expected a CIFTI-2 file \(parcellation"):
        cifti.load_parcellation(nifti)
    with pytest.raises(DataLayoutError, match="nope.dlabel.nii does not exist"):
        cifti.load_parcellation(tmp_path / "nope.dlabel.nii")
    dscalar = write_dscalar(tmp_path / "s.dscalar.nii", IDS, brain_axis())
    with pytest.raises(DataFormatError, match=r"rows are a ScalarAxis, expected a time series"):
        cifti.read_dtseries_info(dscalar)


def test_a_run_on_other_grayordinates_is_rejected(tmp_path, data):
    ax = brain_axis()
    dt = write_dtseries(tmp_path / "a.dtseries.nii", data, ax)
    pmap = cifti.map_parcellation(cifti.load_parcellation(write_dscalar(tmp_path / "i.dscalar.nii", IDS, ax)), ax, dt)
    other = write_dtseries(tmp_path / "b.dtseries.nii", data[:, :16], brain_axis(voxels=False))
    with pytest.raises(DataFormatError, match=r"b.dtseries.nii: its grayordinates \(16 grayordinates.*differ"):
        cifti.parcel_timeseries(other, pmap)


# --------------------------------------------------------------------------------------------------
# The reader in CIFTI mode, on the original pipeline's layout (methods §1.2)
# --------------------------------------------------------------------------------------------------


def write_cifti_dataset(root: Path, rng, sessions=("01", "02"), tr=TR) -> dict:
    """Raw ratings + ciftify dtseries (4 variants per run) + censoring and AFNI motion files."""
    (root / "sub-01").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "DEIPP", "DatasetDOI": "10.18112/openneuro.ds006815.v1.0.0"}))
    (root / "participants.tsv").write_text("participant_id\nsub-01\n")
    pre = root / "derivatives" / "cocoan-preproc"
    ax = brain_axis()
    truth = {}
    for s in sessions:
        for r in (1, 2, 3):
            base = f"sub-01_ses-{s}_task-rating_run-{r}"
            func = root / "sub-01" / f"ses-{s}" / "func"
            func.mkdir(parents=True, exist_ok=True)
            (func / f"{base}_bold.json").write_text(json.dumps({"RepetitionTime": tr}))
            t = np.arange(0, N_VOL * tr + 5, 0.5)
            pd.DataFrame({"t": t, "v": np.linspace(0, 1, t.size)}).to_csv(func / f"{base}_resp.tsv", sep="\t", header=False, index=False)
            results = pre / "ciftify" / "sub-01_ses-01" / "MNINonLinear" / "Results"
            for desc in ("preproc", "denoise"):
                stem = f"{base}_space-MNI152NLin6Asym_res-2_desc-{desc}_bold"
                for smooth in ("s0", "s6"):
                    d = rng.standard_normal((N_VOL, 20)).astype(np.float32)
                    write_dtseries(results / stem / f"{stem}_Atlas_{smooth}.dtseries.nii", d, ax)
                    if (desc, smooth) == ("denoise", "s6"):
                        truth[(s, r)] = d
            dfunc = pre / "sub-01" / f"ses-{s}" / "func"
            dfunc.mkdir(parents=True, exist_ok=True)
            censor = (rng.random(N_VOL) > 0.1).astype(int)
            np.savetxt(dfunc / f"{base}_desc-censoring_timeseries.txt", censor, fmt="%d")
            rp = rng.standard_normal((N_VOL, 6)) * 0.1
            np.savetxt(dfunc / f"{base}_desc-mc_rp.txt", rp, fmt="%.6f")
            truth[(s, r, "censor")] = censor
            truth[(s, r, "rp")] = rp
    write_dscalar(root / "derivatives" / "cocoan-analysis" / "MSC" / "sub-01" / "sub-01_parcels_edgethresh_0.5.dtseries.nii", IDS, ax)
    return truth


def _parcels(root):
    return root / "derivatives" / "cocoan-analysis" / "MSC" / "sub-{participant}" / "sub-{participant}_parcels_edgethresh_0.5.dtseries.nii"


def test_reader_averages_the_denoised_s6_dtseries_and_converts_afni_motion(tmp_path, rng):
    root = tmp_path / "ds006815"
    truth = write_cifti_dataset(root, rng)
    ds = read_dataset(root, dlabel=_parcels(root))
    assert ds.source == "bids" and ds.description.startswith(f"ds006815 (real data) at {root}; derivatives cocoan-preproc")
    part = ds["01"]
    assert part.sessions == ["01", "02"] and len(part.runs) == 6
    assert part.atlas["name"].tolist() == ["parcel-3", "parcel-7", "parcel-12"] and part.included.all()
    run = part.rating_runs("02")[2]
    assert "desc-denoise_bold_Atlas_s6" in run.source and run.tr == pytest.approx(TR)
    np.testing.assert_allclose(run.timeseries, manual_means(truth[("02", 3)], IDS), rtol=1e-6)
    np.testing.assert_array_equal(run.censor, truth[("02", 3, "censor")].astype(bool))
    rp = truth[("02", 3, "rp")]  # roll pitch yaw [deg] dS dL dP [mm]
    np.testing.assert_allclose(run.confounds["trans_x"], rp[:, 4], atol=1e-6)
    np.testing.assert_allclose(run.confounds["rot_z"], np.deg2rad(rp[:, 0]), atol=1e-6)
    rp_file = root / "derivatives" / "cocoan-preproc" / "sub-01" / "ses-02" / "func" / "sub-01_ses-02_task-rating_run-3_desc-mc_rp.txt"
    motion = read_afni_motion(rp_file)
    # the censoring FD (low-passed, as the twin writes it) of the same parameters in degrees
    np.testing.assert_allclose(run.confounds["framewise_displacement"], framewise_displacement(motion, TR))
    afni_order = np.column_stack([rp[:, 4], rp[:, 5], rp[:, 3], rp[:, 1], rp[:, 2], rp[:, 0]])
    np.testing.assert_allclose(framewise_displacement(afni_order, TR, rotation_unit="deg"),
                               run.confounds["framewise_displacement"], atol=1e-5)


def test_dseg_table_supplies_names_when_its_index_matches(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    deriv = root / "derivatives" / "cocoan-preproc"
    table = pd.DataFrame({"index": [12, 3, 7], "name": ["THA", "DMN", "SAL"], "network": ["THA", "DMN", "SAL"],
                          "x": 0.0, "y": 0.0, "z": 0.0, "included": [1, 1, 0]})
    table.to_csv(deriv / "atlas-ind_dseg.tsv", sep="\t", index=False)
    part = read_dataset(root, dlabel=_parcels(root), atlas="ind")["01"]
    assert part.atlas["name"].tolist() == ["DMN", "SAL", "THA"] and part.included.tolist() == [True, False, True]
    table.iloc[:2].to_csv(deriv / "atlas-ind_dseg.tsv", sep="\t", index=False)
    with pytest.raises(DataFormatError, match=r"atlas-ind_dseg.tsv: its index column does not match the parcel ids.*"
                                              r"only in the parcellation: \[7\]"):
        read_dataset(root, dlabel=_parcels(root), atlas="ind")


def test_cifti_tr_disagreeing_with_the_sidecar_is_an_error(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    (root / "sub-01" / "ses-01" / "func" / "sub-01_ses-01_task-rating_run-2_bold.json").write_text('{"RepetitionTime": 0.5}')
    with pytest.raises(DataFormatError, match=r"run-2: the TR disagrees between files: 0.5 s in .*_bold.json but 0.46 s "
                                              r"in .*Atlas_s6.dtseries.nii"):
        read_dataset(root, dlabel=_parcels(root))


def test_dtseries_on_other_grayordinates_is_an_error(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    path = next(root.rglob("*run-3*desc-denoise_bold_Atlas_s6.dtseries.nii"))
    write_dtseries(path, rng.standard_normal((N_VOL, 16)), brain_axis(voxels=False))
    with pytest.raises(DataFormatError, match="run-3.*its grayordinates .* differ from those of the other runs"):
        read_dataset(root, dlabel=_parcels(root))


def test_ambiguous_dtseries_asks_for_a_pattern(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    src = next(root.rglob("*run-1*desc-denoise_bold_Atlas_s6.dtseries.nii"))
    copy = root / "derivatives" / "cocoan-preproc" / "extra" / src.name.replace("bold_Atlas", "bold_v2_Atlas")
    copy.parent.mkdir()
    shutil.copy(src, copy)
    with pytest.raises(DataLayoutError, match=r"several files for sub-01 ses-01 task-rating run-1 \(dense time series\).*dtseries_glob="):
        read_dataset(root, dlabel=_parcels(root))
    ds = read_dataset(root, dlabel=_parcels(root), dtseries_glob="*desc-denoise_bold_Atlas_s6.dtseries.nii")
    assert len(ds["01"].runs) == 3


def test_missing_censoring_is_a_layout_error(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    next(root.rglob("*run-2_desc-censoring_timeseries.txt")).unlink()
    with pytest.raises(DataLayoutError, match=r"run-2: no confounds .*run-2_desc-censoring_timeseries.txt with .*run-2_desc-mc_rp.txt"):
        read_dataset(root, dlabel=_parcels(root))


def test_motion_file_of_another_length_is_an_error(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    path = next(root.rglob("*run-1_desc-mc_rp.txt"))
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(DataFormatError, match=r"run-1_desc-mc_rp.txt: 138 rows, but .* has 140 volumes"):
        read_dataset(root, dlabel=_parcels(root))


def test_cifti_only_data_without_dlabel_asks_for_one(tmp_path, rng):
    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    with pytest.raises(ParameterError, match=r"holds CIFTI dense time series .*pass dlabel="):
        read_dataset(root)


def test_cifti_reading_never_opens_an_input_for_writing(tmp_path, rng, monkeypatch):
    from test_bids_reader import forbid_writes, snapshot

    root = tmp_path / "ds"
    write_cifti_dataset(root, rng, sessions=("01",))
    before = snapshot(root)
    attempts = forbid_writes(monkeypatch, root)
    ds = read_dataset(root, dlabel=_parcels(root))
    monkeypatch.undo()
    assert len(ds["01"].runs) == 3 and attempts == [] and snapshot(root) == before
