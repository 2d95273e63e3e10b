"""Tests of the book's text and table helpers (deipp_core.reporting)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deipp_core.reporting import format_ci, format_metrics, format_table


def test_format_ci_digits_and_p():
    assert format_ci(0.5234, 0.41, 0.6049) == "0.52 [0.41, 0.60]"
    assert format_ci(0.5234, 0.41, 0.6049, p=0.0123) == "0.52 [0.41, 0.60], p = 0.012"
    assert format_ci(0.5234, 0.41, 0.6049, p=1e-4) == "0.52 [0.41, 0.60], p < 0.001"
    assert format_ci(0.5, 0.4, 0.6, digits=3) == "0.500 [0.400, 0.600]"


def test_format_metrics_one_block_per_participant():
    row = dict(n_units=25, r=0.5, r_ci_low=0.3, r_ci_high=0.6, r_p=0.001, auc=0.8, auc_ci_low=0.7,
               auc_ci_high=0.9, auc_p=0.0005, r2=0.2, mae=0.1234)
    m = pd.DataFrame([dict(level="session", **row), dict(level="1min", **row)])
    out = format_metrics({"P1": m, "P2": m})
    assert list(out.index.names) == ["participant", "level"]
    assert out.loc[("P1", "sessions"), "r [95% CI]"] == "0.50 [0.30, 0.60], p = 0.001"
    assert out.loc[("P2", "1-min bins"), "AUC [95% CI]"] == "0.80 [0.70, 0.90], p < 0.001"
    assert out.loc[("P1", "sessions"), "MAE"] == "0.123"


def test_format_table_shows_missing_as_dash_and_rounds():
    pytest.importorskip("jinja2")
    table = pd.DataFrame({"n": [400, 400], "auc": [0.45678, np.nan]}, index=["run", "within_run"])
    html = format_table(table).to_html()
    assert "0.457" in html and "0.45678" not in html
    assert "—" in html
    assert "nan" not in html.lower()
    assert ">400<" in html  # integer columns are not given decimals
    assert 'class="dataframe"' in html  # styled by the book theme like any DataFrame
    assert np.isnan(table.loc["within_run", "auc"])  # the data are not changed
    assert "n/a" in format_table(table, digits=1, missing="n/a").to_html()


def test_format_table_rejects_negative_digits():
    with pytest.raises(ValueError, match="digits"):
        format_table(pd.DataFrame({"a": [1.0]}), digits=-1)
