"""The published figure source data: found in the §13.1 layout, turned into tidy tables, problems
reported one line each, overlaid on the prediction and training-size figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from source_data_fixture import UNITS, write_source_data

from deipp_core import evaluation, stats
from deipp_core.data.source_data import (
    published_levels,
    published_metrics,
    published_prediction,
    published_roc,
    published_trainsize,
    read_source_data,
)
from deipp_core.exceptions import DataLayoutError


@pytest.fixture
def source_dir(tmp_path, rng):
    made = write_source_data(tmp_path / "figshare", rng)
    return tmp_path / "figshare", made


def test_every_file_of_the_layout_is_found_and_read(source_dir):
    root, made = source_dir
    source = read_source_data(root)
    assert source.problems == []
    assert set(source.test) == set(made["test"]) and set(source.roc) == set(made["roc"])
    assert set(source.crosstest) == set(made["cross"]) and set(source.trainsize) == {"01", "02"}
    assert source.participants == ["01", "02"]
    for key, df in made["test"].items():
        pd.testing.assert_frame_equal(source.test[key], df, check_exact=False, rtol=1e-12)


def test_published_metrics_have_the_columns_and_point_estimates_of_evaluate(source_dir, rng):
    root, made = source_dir
    pub = published_metrics(read_source_data(root))
    rows = [("tbin10", f"{s:02d}", r, b) for s in range(1, 5) for r in (1, 2, 3) for b in range(10)]
    preds = pd.DataFrame(rows, columns=["kind", "session", "run", "bin"])
    preds["rating"] = rng.uniform(size=len(preds))
    preds["predicted"] = preds["rating"] + rng.normal(scale=0.2, size=len(preds))
    assert list(pub.columns) == ["participant", *evaluation.evaluate(evaluation.level_table(preds), n_boot=20).columns]
    assert len(pub) == 8
    for row in pub.itertuples():
        df = made["test"][(row.participant, row.level)]
        x, y = df["actualpain"].to_numpy(), df["predictedpain"].to_numpy()
        assert row.n_units == len(x)
        assert row.r == pytest.approx(stats.pearson_r(x, y))
        assert row.auc == pytest.approx(stats.roc_auc(x, y))
        assert row.r2 == pytest.approx(stats.r_squared(x, y))
        assert row.mae == pytest.approx(stats.mean_absolute_error(x, y))
        assert np.isnan(row.r_ci_low) and np.isnan(row.auc_p)  # no bootstrap without the unit hierarchy


def test_published_levels_keep_the_file_order(source_dir):
    root, made = source_dir
    levels = published_levels(read_source_data(root))
    one = levels[(levels["participant"] == "02") & (levels["level"] == "run")]
    np.testing.assert_allclose(one["actual"], made["test"][("02", "run")]["actualpain"])
    np.testing.assert_allclose(one["predicted"], made["test"][("02", "run")]["predictedpain"])
    assert list(one["unit"]) == list(range(len(one)))
    assert list(pd.unique(levels["level"])) == list(UNITS)


def test_roc_points_come_from_the_roc_files_or_equal_perfcurve_of_the_scatter(source_dir):
    root, made = source_dir
    from_files = published_roc(read_source_data(root))
    for f in root.rglob("*_srcdat_roc_*.csv"):
        f.unlink()
    from_scatter = published_roc(read_source_data(root))
    pd.testing.assert_frame_equal(from_files, from_scatter)
    d = from_files[(from_files["participant"] == "01") & (from_files["level"] == "1min")]
    np.testing.assert_allclose(d["fpr"], made["roc"][("01", "1min")]["1-specificity"])
    assert (d["fpr"].iloc[0], d["tpr"].iloc[0]) == (0.0, 0.0)


def test_published_trainsize_is_in_the_summary_format(source_dir):
    root, made = source_dir
    ts = published_trainsize(read_source_data(root))
    assert list(ts.columns) == ["participant", "n_session", "level", "mean_r", "ci_lower", "ci_upper"]
    one = ts[(ts["participant"] == "01") & (ts["level"] == "2min")]
    np.testing.assert_allclose(one["mean_r"], made["trainsize"]["01"]["2min_mean"])
    np.testing.assert_allclose(one["ci_upper"], made["trainsize"]["01"]["2min_95ci_upper"])
    assert list(one["n_session"]) == list(made["trainsize"]["01"]["n_session"])


def test_published_prediction_splits_by_participant(source_dir):
    root, _ = source_dir
    pub = published_prediction(read_source_data(root))
    p1 = pub.for_participant("01")
    assert set(p1.levels["participant"]) == set(p1.metrics["participant"]) == set(p1.roc["participant"]) == {"01"}
    assert pub.for_participant("03") is None


def test_missing_file_is_one_line_naming_the_expected_file(source_dir):
    root, _ = source_dir
    gone = root / "predict_rating" / "sub-02" / "sub-02_predict_rating_test_indparc_srcdat_y_yfit_session.csv"
    gone.unlink()
    source = read_source_data(root)
    assert len(source.problems) == 1
    (msg,) = source.problems
    assert "\n" not in msg and msg.startswith(f"missing {gone.name}")
    assert ("02", "session") not in source.test and ("02", "run") in source.test


def test_misnamed_level_is_reported_with_the_expected_name(source_dir):
    root, _ = source_dir
    folder = root / "predict_rating" / "sub-01"
    right = folder / "sub-01_predict_rating_test_indparc_srcdat_y_yfit_session.csv"
    wrong = folder / "sub-01_predict_rating_test_indparc_srcdat_y_yfit_ses.csv"
    right.rename(wrong)
    (msg,) = read_source_data(root).problems
    assert "\n" not in msg
    assert f"missing {right.name}" in msg and wrong.name in msg and "1min, 2min, run, session" in msg


def test_renamed_column_is_reported_with_expected_and_found_columns(source_dir):
    root, _ = source_dir
    path = root / "predict_rating" / "sub-01" / "sub-01_predict_rating_test_indparc_srcdat_y_yfit_2min.csv"
    pd.read_csv(path).rename(columns={"predictedpain": "predicted"}).to_csv(path, index=False)
    ts = root / "predict_rating" / "sub-02" / "sub-02_predict_rating_trainsize_indparc_srcdat_corr.csv"
    pd.read_csv(ts).drop(columns="run_mean").to_csv(ts, index=False)
    source = read_source_data(root)
    assert len(source.problems) == 2 and all("\n" not in p for p in source.problems)
    col, tsp = sorted(source.problems, key=lambda p: "trainsize" in p)
    assert col.startswith(path.name) and "expected columns actualpain, predictedpain" in col
    assert "missing predictedpain" in col and "found actualpain, predicted" in col
    assert tsp.startswith(ts.name) and "missing run_mean" in tsp
    assert ("01", "2min") not in source.test and "02" not in source.trainsize


def test_a_folder_without_source_data_is_a_clear_error(tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataLayoutError, match="no source-data CSV found .* expected names such as sub-01_"):
        read_source_data(tmp_path)
    with pytest.raises(DataLayoutError, match="does not exist"):
        read_source_data(tmp_path / "absent")


def test_other_parcellation_types_are_ignored(source_dir):
    root, _ = source_dir
    src = root / "predict_rating" / "sub-01" / "sub-01_predict_rating_test_indparc_srcdat_y_yfit_run.csv"
    (root / "sub-01_predict_rating_test_grpparc_srcdat_y_yfit_run.csv").write_text(src.read_text())
    assert set(read_source_data(root).test) == set(read_source_data(root, parctype="indparc").test)
    assert set(read_source_data(root, parctype="grpparc").test) == {("01", "run")}


# ------------------------------------------------------------------------------------------------
# Figures: published values overlaid and labelled
# ------------------------------------------------------------------------------------------------


def _levels_and_metrics(rng, n=30):
    frames = []
    for level in UNITS:
        x = rng.uniform(size=n)
        frames.append(pd.DataFrame({"level": level, "actual": x, "predicted": x + rng.normal(scale=0.3, size=n)}))
    levels = pd.concat(frames, ignore_index=True)
    metrics = pd.DataFrame([{"level": lv, "r": stats.pearson_r(d["actual"], d["predicted"]),
                             "auc": stats.roc_auc(d["actual"], d["predicted"])} for lv, d in levels.groupby("level")])
    return levels, metrics


def test_scatter_overlays_published_units_and_titles_both_values(source_dir, rng):
    from deipp_core.plotting.prediction import PUBLISHED_LABEL, plot_level_scatter

    root, made = source_dir
    pub = published_prediction(read_source_data(root)).for_participant("01")
    levels, metrics = _levels_and_metrics(rng)
    fig = plot_level_scatter(levels, metrics, published=pub.levels, published_metrics=pub.metrics,
                             build_label="this build (twin)")
    ax = fig.axes[0]
    offsets = [c.get_offsets() for c in ax.collections]
    assert [len(o) for o in offsets] == [30, len(made["test"][("01", "1min")])]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["this build (twin)", PUBLISHED_LABEL]
    m = pub.metrics.set_index("level").loc["1min"]
    assert f"published: r = {m['r']:.2f}, AUC = {m['auc']:.2f}" in ax.get_title()
    assert "this build (twin): r = " in ax.get_title()
    plain = plot_level_scatter(levels, metrics)
    assert plain.axes[0].get_legend() is None and "published" not in plain.axes[0].get_title()


def test_roc_overlays_published_curves(source_dir, rng):
    from deipp_core.plotting.prediction import PUBLISHED_LABEL, plot_roc

    root, _ = source_dir
    pub = published_prediction(read_source_data(root)).for_participant("02")
    roc = pub.roc.drop(columns="participant")  # the same shape as this build's ROC table
    fig = plot_roc(roc, published=pub.roc, build_label="this build (twin)")
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() != "-" and len(line.get_xdata()) > 2]
    assert len(dashed) == 4
    assert PUBLISHED_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]


def test_training_size_grid_overlays_the_participants_published_curve(source_dir):
    from types import SimpleNamespace

    from deipp_core.plotting.prediction import PUBLISHED_LABEL
    from deipp_core.plotting.training_size import plot_training_size_grid

    root, made = source_dir
    pub = published_trainsize(read_source_data(root))
    summary = pub[pub["participant"] == "01"].drop(columns="participant").assign(frac_significant=0.5)
    summary = summary.assign(mean_r=summary["mean_r"] - 0.2, ci_lower=summary["ci_lower"] - 0.2,
                             ci_upper=summary["ci_upper"] - 0.2)
    res = SimpleNamespace(participant="01", summary=summary, n_reps=3, reference_size=4)
    fig = plot_training_size_grid({"Participant 1": res}, published=pub, build_label="this build (twin)")
    ax = fig.axes[0]
    published_means = made["trainsize"]["01"]["1min_mean"].to_numpy()
    drawn = [line.get_ydata() for line in ax.lines if line.get_linestyle() == "--"]
    assert any(len(y) == len(published_means) and np.allclose(y, published_means) for y in drawn)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "this build (twin)" in labels and PUBLISHED_LABEL in labels
    other = plot_training_size_grid({"Participant 1": SimpleNamespace(**{**vars(res), "participant": "09"})},
                                    published=pub)
    assert PUBLISHED_LABEL not in [t.get_text() for t in other.axes[0].get_legend().get_texts()]
