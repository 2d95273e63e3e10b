"""Published source data are read flexibly; the ledger fills every claim from computed results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from source_data_fixture import write_source_data

from deipp_core.analyses.ledger import PAPER_CLAIMS, build_ledger, compare_with_published
from deipp_core.data.dataset import Dataset, Participant
from deipp_core.data.source_data import published_metrics, published_trainsize, read_source_data
from deipp_core.exceptions import DataLayoutError
from deipp_core.stats import pearson_r, roc_auc


def _write_test_csvs(root: Path, sub: str, rng, units=("1min", "2min", "run", "session")) -> dict:
    made = {}
    for unit, n in zip(("1min", "2min", "run", "session"), (300, 150, 30, 10)):
        if unit not in units:
            continue
        x = rng.uniform(size=n)
        df = pd.DataFrame({"actualpain": x, "predictedpain": x + rng.normal(scale=0.3, size=n)})
        folder = root / f"Fig2_sub-{sub}"
        folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(folder / f"sub-{sub}_predict_rating_test_indparc_srcdat_y_yfit_{unit}.csv", index=False)
        made[unit] = df
    return made


def test_source_data_found_in_any_layout_and_recomputed(tmp_path, rng):
    made = _write_test_csvs(tmp_path, "01", rng)
    source = read_source_data(tmp_path)
    assert set(source.test) == {("01", u) for u in made}
    assert source.problems == []
    pub = published_metrics(source).set_index("level")
    for unit, df in made.items():
        assert pub.loc[unit, "r"] == pytest.approx(pearson_r(df["actualpain"], df["predictedpain"]))
        assert pub.loc[unit, "auc"] == pytest.approx(roc_auc(df["actualpain"], df["predictedpain"]))


def test_missing_and_misnamed_columns_are_reported_not_raised(tmp_path, rng):
    _write_test_csvs(tmp_path, "02", rng, units=("1min", "2min", "run"))
    bad = tmp_path / "sub-02_predict_rating_test_indparc_srcdat_y_yfit_session.csv"
    pd.DataFrame({"actual": [1.0], "pred": [2.0]}).to_csv(bad, index=False)
    source = read_source_data(tmp_path)
    text = "\n".join(source.problems)
    assert "expected columns actualpain, predictedpain" in text and bad.name in text
    assert len(source.problems) == 1  # the file is there: one problem (its columns), not also "missing"


def test_folder_without_source_data_is_a_clear_error(tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataLayoutError, match="no source-data CSV found"):
        read_source_data(tmp_path)
    with pytest.raises(DataLayoutError, match="does not exist"):
        read_source_data(tmp_path / "absent")


def _metrics(r, auc):
    return pd.DataFrame({"level": ["1min", "2min", "run", "session"], "r": r, "auc": auc})


def test_ledger_fills_claims_from_results_and_names_the_data(tmp_path, rng):
    atlas = pd.DataFrame({"index": [0], "name": ["a"], "network": ["n"], "x": [0.0], "y": [0.0], "z": [0.0],
                          "included": [True]})
    ds = Dataset({"01": Participant("01", atlas, ()), "02": Participant("02", atlas, ())}, "twin",
                 tmp_path, "digital twin (SIMULATED data; test)")
    metrics = {"01": _metrics([0.41, 0.5, 0.6, 0.62], [0.7, 0.75, 0.8, 0.85]),
               "02": _metrics([0.5, 0.55, 0.6, 0.66], [0.76, 0.8, 0.9, 0.93])}
    _write_test_csvs(tmp_path / "src", "01", rng)
    ledger = build_ledger(ds, metrics, source=read_source_data(tmp_path / "src"))
    by_claim = ledger.set_index("chapter")
    assert set(ledger["data"]) == {"digital twin (SIMULATED data; test)"}
    rows = ledger.set_index("claim")
    claim_r01 = next(c for c in PAPER_CLAIMS if c.key == "r_01")
    assert rows.loc[claim_r01.claim, "this build"] == "r = 0.41–0.62"
    assert rows.loc[claim_r01.claim, "paper"] == "r = 0.40–0.61"
    assert rows.loc[claim_r01.claim, "published (source data)"].startswith("r = ")
    claim_auc02 = next(c for c in PAPER_CLAIMS if c.key == "auc_02")
    assert rows.loc[claim_auc02.claim, "published (source data)"] == "not in the source data"
    assert "prediction" in by_claim.index


def _claim_row(ledger, key):
    claim = next(c for c in PAPER_CLAIMS if c.key == key)
    return ledger.set_index("claim").loc[claim.claim]


def test_ledger_shows_the_published_values_of_a_full_source_data_folder(tmp_path, rng):
    atlas = pd.DataFrame({"index": [0], "name": ["a"], "network": ["n"], "x": [0.0], "y": [0.0], "z": [0.0],
                          "included": [True]})
    ds = Dataset({"01": Participant("01", atlas, ()), "02": Participant("02", atlas, ())}, "twin",
                 tmp_path, "digital twin (SIMULATED data; test)")
    metrics = {"01": _metrics([0.41, 0.5, 0.6, 0.62], [0.7, 0.75, 0.8, 0.85]),
               "02": _metrics([0.5, 0.55, 0.6, 0.66], [0.76, 0.8, 0.9, 0.93])}
    made = write_source_data(tmp_path / "src", rng)
    source = read_source_data(tmp_path / "src")
    ledger = build_ledger(ds, metrics, source=source)
    pub = published_metrics(source)
    for label in ("01", "02"):
        sub = pub[pub["participant"] == label]
        assert _claim_row(ledger, f"r_{label}")["published (source data)"] == (
            f"r = {sub['r'].min():.2f}–{sub['r'].max():.2f}")
        assert _claim_row(ledger, f"auc_{label}")["published (source data)"] == (
            f"AUC = {sub['auc'].min():.2f}–{sub['auc'].max():.2f}")
    assert _claim_row(ledger, "n_sessions")["published (source data)"] == "—"
    # claims whose computed inputs were given, with the published cell from the trainsize/cross files
    from types import SimpleNamespace

    ts = published_trainsize(source)
    fake = {label: SimpleNamespace(summary=ts[ts["participant"] == label].assign(frac_significant=0.0),
                                   trend=pd.DataFrame({"level": ["1min"], "p": [0.01]}), reference_size=4)
            for label in ("01", "02")}
    ledger = build_ledger(ds, metrics, trainsize=fake, source=source)
    first = made["trainsize"]["01"].iloc[0]
    cell = _claim_row(ledger, "trainsize_trend")["published (source data)"]
    assert cell.startswith(f"P1: 1-min r {first['1min_mean']:.2f} with 1 → ") and "P2:" in cell


def test_compare_with_published_puts_levels_side_by_side(tmp_path, rng):
    write_source_data(tmp_path, rng, participants=("01",))
    pub = published_metrics(read_source_data(tmp_path))
    table = compare_with_published({"01": _metrics([0.1, 0.2, 0.3, 0.4], [0.6, 0.6, 0.7, 0.8]),
                                    "02": _metrics([0.1, 0.2, 0.3, 0.4], [0.6, 0.6, 0.7, 0.8])}, pub)
    one = table[table["participant"] == "01"].set_index("level")
    assert one.loc["run", "r (this build)"] == 0.3
    assert one.loc["run", "r (published)"] == pytest.approx(pub.set_index("level").loc["run", "r"])
    assert table[table["participant"] == "02"]["AUC (published)"].isna().all()


def test_ledger_figure_draws_paper_ranges_and_levels(rng):
    from deipp_core.plotting.ledger import plot_ledger_ranges

    metrics = {"01": _metrics([0.41, 0.5, 0.6, 0.62], [0.7, 0.75, 0.8, 0.85]),
               "02": _metrics([0.5, 0.55, 0.6, 0.66], [0.76, 0.8, 0.9, 0.93])}
    fig = plot_ledger_ranges(metrics)
    ax_r, ax_auc = fig.axes
    bars = [line for line in ax_r.lines if line.get_linewidth() == 10]
    assert [tuple(b.get_xdata()) for b in bars] == [(0.40, 0.61), (0.51, 0.65)]
    assert len(ax_auc.collections) == 8  # four levels × two participants


def test_data_source_admonition_says_simulated_and_null(tmp_path):
    from deipp_core.profiles import get_profile
    from deipp_core.reporting import data_source_admonition

    atlas = pd.DataFrame({"index": [0], "name": ["a"], "network": ["n"], "x": [0.0], "y": [0.0], "z": [0.0],
                          "included": [True]})
    planted = Dataset({"01": Participant("01", atlas, ())}, "twin", tmp_path, "digital twin",
                      ground_truth={"01": {"meta": {"null": False}}})
    null = Dataset({"01": Participant("01", atlas, ())}, "twin", tmp_path, "digital twin",
                   ground_truth={"01": {"meta": {"null": True}}})
    real = Dataset({"01": Participant("01", atlas, ())}, "bids", tmp_path, "ds006815 (real data)")
    prof = get_profile("quick")
    assert "SIMULATED" in data_source_admonition(planted, prof)
    assert "planted pain signal" in data_source_admonition(planted, prof)
    assert "no pain signal" in data_source_admonition(null, prof)
    assert "SIMULATED" not in data_source_admonition(real, prof)


@pytest.mark.slow
@pytest.mark.notebook
def test_ledger_page_shows_published_values_and_names_a_missing_file(tmp_path, rng, quick_twin_root):
    from deipp_core import book

    made = write_source_data(tmp_path / "src", rng)
    gone = next((tmp_path / "src").rglob("sub-02_predict_rating_test_indparc_srcdat_y_yfit_session.csv"))
    gone.unlink()
    chapter = book.get_chapter("ledger")
    nb = book.execute_chapter(chapter, {"profile": "quick", "source_data": str(tmp_path / "src")},
                              cache_dir=tmp_path / "cache", progress=False)
    text = nb.read_text()
    assert "published (source data)" in text
    r01 = [pearson_r(made["test"][("01", u)]["actualpain"], made["test"][("01", u)]["predictedpain"])
           for u in ("1min", "2min", "run", "session")]
    assert f"r = {min(r01):.2f}–{max(r01):.2f}" in text
    assert f"missing {gone.name} under" in text
