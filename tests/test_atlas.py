"""The Seitzman 300-ROI atlas table, its stratified subset and its TSV round trip."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from deipp_core.data.atlas import (
    ATLAS_COLUMNS,
    atlas_name,
    read_atlas_tsv,
    seitzman_atlas,
    seitzman_subset,
    write_atlas_tsv,
)
from deipp_core.exceptions import DataFormatError, ParameterError

# Network sizes of the Seitzman et al. (2020) 300-ROI set.
SEITZMAN_COUNTS = {
    "DefaultMode": 67, "SomatomotorDorsal": 53, "Visual": 37, "FrontoParietal": 36,
    "CinguloOpercular": 26, "unassigned": 15, "DorsalAttention": 14, "Auditory": 12, "Salience": 9,
    "VentralAttention": 9, "Reward": 8, "ParietoMedial": 5, "SomatomotorLateral": 5,
    "MedialTemporalLobe": 4,
}


@pytest.fixture(scope="module")
def atlas():
    return seitzman_atlas()


def test_atlas_has_the_contract_columns_and_300_rows(atlas):
    assert list(atlas.columns) == list(ATLAS_COLUMNS)
    assert len(atlas) == 300
    assert atlas["index"].tolist() == list(range(300))
    assert atlas["included"].dtype == bool
    assert atlas["name"].is_unique


def test_atlas_names_point_to_seitzman_roi_and_network(atlas):
    for name, net in zip(atlas["name"], atlas["network"]):
        m = re.fullmatch(r"ROI(\d{3})_(\w+)", name)
        assert m and m.group(2) == net and 1 <= int(m.group(1)) <= 300
    assert sorted(int(n[3:6]) for n in atlas["name"]) == list(range(1, 301))


def test_atlas_coordinates_match_nilearn_file_order(atlas):
    from nilearn.datasets import fetch_coords_seitzman_2018

    raw = fetch_coords_seitzman_2018(ordered_regions=False)
    rois = raw.rois.reset_index(drop=True)
    for _, row in atlas.sample(25, random_state=0).iterrows():
        k = int(row["name"][3:6]) - 1
        assert (row["x"], row["y"], row["z"]) == tuple(rois.loc[k, ["x", "y", "z"]])
        assert row["network"] == raw.networks[k]


def test_atlas_networks_and_visual_exclusion(atlas):
    assert dict(Counter(atlas["network"])) == SEITZMAN_COUNTS
    assert (atlas["included"] == (atlas["network"] != "Visual")).all()
    assert int(atlas["included"].sum()) == 263


def test_atlas_coordinates_are_plausible_mni(atlas):
    assert atlas["x"].abs().max() < 80
    assert atlas["y"].between(-110, 80).all()
    assert atlas["z"].between(-60, 90).all()
    # both hemispheres are represented
    assert (atlas["x"] < -10).sum() > 100 and (atlas["x"] > 10).sum() > 100


def test_atlas_rows_are_grouped_by_network_anterior_to_posterior(atlas):
    nets = atlas["network"].tolist()
    blocks = [n for i, n in enumerate(nets) if i == 0 or nets[i - 1] != n]
    assert len(blocks) == len(set(blocks)) == 14  # each network is one contiguous block
    assert blocks[-1] == "unassigned"
    assert blocks[:-1] == sorted(blocks[:-1])
    for _, g in atlas.groupby("network"):
        assert np.all(np.diff(g["y"].to_numpy()) <= 0)


def test_atlas_is_deterministic(atlas):
    pd.testing.assert_frame_equal(atlas, seitzman_atlas())


def test_atlas_name():
    assert atlas_name() == "Seitzman300"
    assert atlas_name(300) == "Seitzman300"
    assert atlas_name(80) == "Seitzman300q80"


@pytest.mark.parametrize("n", [14, 60, 80, 100, 299])
def test_subset_keeps_every_network_and_the_atlas_order(atlas, n):
    sub = seitzman_subset(n, atlas)
    assert len(sub) == n
    assert list(sub.columns) == list(ATLAS_COLUMNS)
    assert sub["index"].tolist() == list(range(n))
    assert set(sub["network"]) == set(atlas["network"])
    pos = atlas.set_index("name").loc[sub["name"], "index"].to_numpy()
    assert np.all(np.diff(pos) > 0)  # atlas order kept
    full = atlas.set_index("name")
    assert (full.loc[sub["name"], "included"].to_numpy() == sub["included"].to_numpy()).all()


def test_subset_is_proportional_to_network_size(atlas):
    counts = seitzman_subset(80, atlas)["network"].value_counts()
    for net, size in SEITZMAN_COUNTS.items():
        # one parcel per network first, the rest in proportion: large networks give up < 2 parcels
        assert counts[net] >= 1
        assert abs(counts[net] - 80 * size / 300) < 2
    assert counts.idxmax() == "DefaultMode"


def test_subset_is_deterministic_and_full_size_is_the_atlas(atlas):
    pd.testing.assert_frame_equal(seitzman_subset(80, atlas), seitzman_subset(80))
    pd.testing.assert_frame_equal(seitzman_subset(300, atlas), atlas)


def test_subset_rejects_impossible_sizes(atlas):
    with pytest.raises(ParameterError, match="all 14 networks"):
        seitzman_subset(10, atlas)
    with pytest.raises(ParameterError, match="<= 300"):
        seitzman_subset(301, atlas)


def test_atlas_tsv_round_trip(tmp_path, atlas):
    path = write_atlas_tsv(atlas, tmp_path / "atlas-Seitzman300_dseg.tsv")
    text = path.read_text().splitlines()
    assert text[0].split("\t") == list(ATLAS_COLUMNS)
    assert {line.split("\t")[-1] for line in text[1:]} == {"0", "1"}
    back = read_atlas_tsv(path)
    pd.testing.assert_frame_equal(back, atlas, check_dtype=False)
    assert back["included"].dtype == bool


def test_read_atlas_without_included_keeps_every_parcel(tmp_path, atlas):
    path = tmp_path / "a.tsv"
    atlas.drop(columns="included").to_csv(path, sep="\t", index=False)
    assert read_atlas_tsv(path)["included"].all()


def test_atlas_tables_without_required_columns_are_rejected(tmp_path, atlas):
    with pytest.raises(DataFormatError, match="network"):
        write_atlas_tsv(atlas.drop(columns="network"), tmp_path / "x.tsv")
    path = tmp_path / "y.tsv"
    atlas.drop(columns=["x"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(DataFormatError, match="lacks columns"):
        read_atlas_tsv(path)
