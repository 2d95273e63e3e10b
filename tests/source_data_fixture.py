"""A synthetic copy of the paper's figure source data, in the layout and with the column names of
``reference/deipp_methods.md`` §13.1 (``predict_rating/sub-XX/…_srcdat_….csv``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deipp_core.stats import roc_points

UNITS = ("1min", "2min", "run", "session")
#: Units per session at each level: 3 runs of 10 one-minute (5 two-minute) bins.
PER_SESSION = {"1min": 30, "2min": 15, "run": 3, "session": 1}


def write_source_data(root: Path, rng: np.random.Generator, *, participants=("01", "02"), n_sessions: int = 8,
                      noise: float = 0.3, parctype: str = "indparc") -> dict:
    """Write model-test scatter + ROC, cross-test and training-size CSVs; return what was written.

    Returns
    -------
    dict
        ``{"test": {(sub, unit): DataFrame}, "roc": {...}, "trainsize": {sub: DataFrame}, "cross": {...}}``.
    """
    made: dict = {"test": {}, "roc": {}, "trainsize": {}, "cross": {}}
    for sub in participants:
        folder = root / "predict_rating" / f"sub-{sub}"
        folder.mkdir(parents=True, exist_ok=True)
        for unit in UNITS:
            n = PER_SESSION[unit] * n_sessions
            x = rng.uniform(size=n)
            df = pd.DataFrame({"actualpain": x, "predictedpain": x + rng.normal(scale=noise, size=n)})
            df.to_csv(folder / f"sub-{sub}_predict_rating_test_{parctype}_srcdat_y_yfit_{unit}.csv", index=False)
            fpr, tpr = roc_points(df["actualpain"], df["predictedpain"])
            roc = pd.DataFrame({"1-specificity": fpr, "sensitivity": tpr})
            roc.to_csv(folder / f"sub-{sub}_predict_rating_test_{parctype}_srcdat_roc_{unit}.csv", index=False)
            made["test"][(sub, unit)], made["roc"][(sub, unit)] = df, roc
        sizes = np.arange(1, n_sessions - 1)
        ts = pd.DataFrame({"n_session": sizes})
        for i, unit in enumerate(UNITS):
            mean = 0.1 + 0.5 * (1 - np.exp(-sizes / 3)) + 0.01 * i
            ts[f"{unit}_mean"] = mean
            ts[f"{unit}_95ci_lower"] = mean - 0.05
            ts[f"{unit}_95ci_upper"] = mean + 0.05
        ts.to_csv(folder / f"sub-{sub}_predict_rating_trainsize_{parctype}_srcdat_corr.csv", index=False)
        made["trainsize"][sub] = ts
    if len(participants) == 2:
        for train, test in (participants, participants[::-1]):
            folder = root / "predict_rating" / f"sub-{train}"
            n = PER_SESSION["1min"] * n_sessions
            x = rng.uniform(size=n)
            df = pd.DataFrame({"actualpain": x, "predictedpain": rng.uniform(size=n)})
            df.to_csv(folder / f"sub-{train}_predict_rating_crosstest_sub-{test}_{parctype}_srcdat_y_yfit_1min.csv",
                      index=False)
            made["cross"][(train, test, "1min")] = df
    return made
