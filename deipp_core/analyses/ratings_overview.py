"""The study and its ratings (paper Fig. 1): how pain varies across sessions, runs and minutes.

For one participant this module turns the continuous ratings into the tables the "Study and data"
chapter shows. Nothing here needs brain data: only the ratings, the censor flags and the session
list.

* :func:`rating_units` — the rating at the four levels of the paper (1-min bins = 10 ``discretize``
  time bins per run, 2-min bins = 5, runs = mean over the kept frames, sessions = mean of the run
  means; methods spec §5, §10.2) with the positions of the study-wide dot strip
  (``analysis_visualize_rating``, §13).
* :func:`summarize_levels` — mean, SD and number of units per level.
* :func:`variance_components` — nested random-effects decomposition of pain into between-session,
  between-run-within-session and within-run (minute-to-minute) variance.
* :func:`rating_traces` — each run's rating on the volume grid from 30 s on (unlagged, uncensored:
  ``rating_tr[n_trim:]``), the time courses of the original's ``rating_TR`` figures.
* :func:`censoring_table` — kept and censored volumes of every rating run.
* :func:`session_timeline` — the sessions in order, with acquisition times when the data set has a
  ``sub-XX_sessions.tsv`` with ``acq_time``.
* :func:`rating_overview` — all of the above for one participant (:class:`RatingOverview`);
  :func:`overview_table` puts several participants side by side.
* :func:`cofluctuation_example` — the data of the edge co-fluctuation schematic (an illustration on
  random noise, not data of the study).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from deipp_core.data.dataset import Participant
from deipp_core.exceptions import DataFormatError, ParameterError
from deipp_core.ratings import RatingParams, RunFrames, align_run, bin_means

__all__ = [
    "LEVELS",
    "RatingOverview",
    "rating_units",
    "summarize_levels",
    "variance_components",
    "rating_traces",
    "censoring_table",
    "session_timeline",
    "rating_overview",
    "overview_table",
    "overview_sentence",
    "sessions_sentence",
    "cofluctuation_example",
]

logger = logging.getLogger(__name__)

#: The four levels of the paper, finest first.
LEVELS: tuple[str, ...] = ("1min", "2min", "run", "session")

#: Time bins per run of the two bin levels (methods §5.5: 10 → "1-min", 5 → "2-min").
_BINS_OF_LEVEL: dict[str, int] = {"1min": 10, "2min": 5}

#: Columns of :func:`rating_units`.
UNIT_COLUMNS: tuple[str, ...] = (
    "level", "session", "run", "bin", "rating", "n_frames", "position", "start", "stop",
)

#: Variance components, outermost first.
COMPONENTS: tuple[str, ...] = ("session", "run", "minute")


# --------------------------------------------------------------------------------------------------
# Levels and the study-wide strip
# --------------------------------------------------------------------------------------------------


def _session_key(label: str):
    """Numeric order for digit labels (``"2" < "10"``), lexical otherwise."""
    label = str(label)
    return (0, int(label), label) if label.isdigit() else (1, 0, label)


def rating_units(frames: Mapping[tuple[str, int], RunFrames]) -> pd.DataFrame:
    """The rating at the four levels of the paper, with positions for the study-wide dot strip.

    Parameters
    ----------
    frames : mapping of (session, run) to RunFrames
        The aligned rating runs of one participant: the output of
        :func:`deipp_core.ratings.align_run` per run, or :attr:`ParticipantFeatures.frames
        <deipp_core.features.ParticipantFeatures>`. Each must hold 10 and 5 time bins (``tbin[10]``,
        ``tbin[5]``), which the default :class:`~deipp_core.ratings.RatingParams` give.

    Returns
    -------
    DataFrame
        Columns :data:`UNIT_COLUMNS`:

        * ``level`` — ``"1min"`` (mean rating of each of the 10 time bins of a run), ``"2min"`` (5 time
          bins), ``"run"`` (mean over the run's kept frames) and ``"session"`` (mean of the session's run
          means, as :func:`deipp_core.evaluation.level_table` defines it);
        * ``session`` (str), ``run`` (int; −1 at the session level), ``bin`` (0-based; −1 at the run and
          session levels), ``rating``, ``n_frames`` (kept frames averaged);
        * ``position`` — x of the unit in the study-wide strip (``analysis_visualize_rating``): the
          1-min bins of the k-th run (0-based, over the whole study) sit at ``10k + 1 … 10k + 10``, and
          a coarser unit sits at the centre of the 1-min slots it covers; ``start`` and ``stop`` are the
          edges of that span (``position ± width/2``), so run and session borders are the ``start`` of
          the run and session rows.

        Rows are ordered by level, then session (numerically when the labels are digits), run and bin.

    Raises
    ------
    DataFormatError
        If ``frames`` is empty or a run lacks its 10 or 5 time bins.

    Examples
    --------
    >>> import numpy as np
    >>> from deipp_core.ratings import RunFrames, time_bins
    >>> rf = RunFrames(frames=np.arange(100), rating=np.linspace(0, 1, 100), rating_tr=np.zeros(200),
    ...                tbin={10: time_bins(100, 10), 5: time_bins(100, 5)})
    >>> units = rating_units({("01", 1): rf})
    >>> units.groupby("level", sort=False).size().to_dict()
    {'1min': 10, '2min': 5, 'run': 1, 'session': 1}
    >>> units.loc[units["level"] == "session", ["position", "start", "stop"]].values.tolist()
    [[5.5, 0.5, 10.5]]
    """
    if not frames:
        raise DataFormatError("no aligned rating run was given; rating_units needs at least one run")
    keys = sorted(frames, key=lambda k: (_session_key(k[0]), int(k[1])))
    slot = _BINS_OF_LEVEL["1min"]
    rows: list[tuple] = []
    for k, (session, run) in enumerate(keys):
        rf = frames[(session, run)]
        for level, n in _BINS_OF_LEVEL.items():
            labels = rf.tbin.get(n)
            if labels is None:
                raise DataFormatError(
                    f"ses-{session} run-{run}: the aligned run has no {n} time bins (it has "
                    f"{sorted(rf.tbin)}); align it with RatingParams(n_bins=...) including {n}"
                )
            means = bin_means(rf.rating, labels, n)
            counts = np.bincount(labels[labels >= 0], minlength=n)
            width = slot / n
            for b in range(n):
                start = slot * k + 0.5 + b * width
                rows.append((level, str(session), int(run), b, float(means[b]), int(counts[b]),
                             start + width / 2, start, start + width))
        start = slot * k + 0.5
        rows.append(("run", str(session), int(run), -1, float(np.mean(rf.rating)), rf.n_frames,
                     start + slot / 2, start, start + slot))
    table = pd.DataFrame(rows, columns=list(UNIT_COLUMNS))
    runs = table[table["level"] == "run"]
    ses = runs.groupby("session", sort=False).agg(
        rating=("rating", "mean"), n_frames=("n_frames", "sum"), start=("start", "min"), stop=("stop", "max")
    ).reset_index()
    ses["position"] = (ses["start"] + ses["stop"]) / 2
    ses = ses.assign(level="session", run=-1, bin=-1)[list(UNIT_COLUMNS)]
    table = pd.concat([table, ses], ignore_index=True)
    order = pd.DataFrame({
        "l": table["level"].map({lv: i for i, lv in enumerate(LEVELS)}),
        "p": table["position"],
    })
    table = table.loc[order.sort_values(["l", "p"], kind="stable").index].reset_index(drop=True)
    return table.astype({"run": "int64", "bin": "int64", "n_frames": "int64"})


def summarize_levels(units: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and number of units of the rating at each level (printed by the original figures).

    Parameters
    ----------
    units : DataFrame
        As returned by :func:`rating_units` (columns ``level`` and ``rating``).

    Returns
    -------
    DataFrame
        One row per level present, in :data:`LEVELS` order: ``level``, ``n``, ``mean``, ``sd``
        (sample SD, ddof = 1, as MATLAB ``std``; NaN for a single unit), ``min``, ``max``.

    Examples
    --------
    >>> units = pd.DataFrame({"level": ["run", "run", "session"], "rating": [0.2, 0.4, 0.3]})
    >>> summarize_levels(units).round(3).to_dict("list")["sd"]
    [0.141, nan]
    """
    missing = {"level", "rating"} - set(units.columns)
    if missing:
        raise DataFormatError(f"the units table lacks column(s) {sorted(missing)}; pass rating_units(...)")
    out = []
    for level in LEVELS:
        r = units.loc[units["level"] == level, "rating"].to_numpy(dtype=float)
        if r.size == 0:
            continue
        out.append({
            "level": level,
            "n": int(r.size),
            "mean": float(r.mean()),
            "sd": float(r.std(ddof=1)) if r.size > 1 else float("nan"),
            "min": float(r.min()),
            "max": float(r.max()),
        })
    return pd.DataFrame(out, columns=["level", "n", "mean", "sd", "min", "max"])


# --------------------------------------------------------------------------------------------------
# Variance decomposition
# --------------------------------------------------------------------------------------------------


def variance_components(
    values, sessions, runs, *, truncate: bool = True
) -> pd.DataFrame:
    """Split the variance of pain into between-session, between-run and within-run components.

    Pain is treated as a two-level nested random-effects model,
    ``y_sru = μ + a_s + b_sr + e_sru`` with session effects ``a_s ~ (0, σ²_session)``, run effects
    within sessions ``b_sr ~ (0, σ²_run)`` and minute-to-minute deviations within runs
    ``e_sru ~ (0, σ²_minute)`` (``u`` indexes the units of a run, e.g. its 1-min bins). The components
    are the ANOVA (method-of-moments) estimators for a nested design, which allow unequal numbers of
    runs per session and of units per run (Searle, Casella & McCulloch 1992, *Variance Components*,
    §5.3; Sokal & Rohlf, *Biometry*, §10.3). With ``N`` units, ``a`` sessions, ``b`` runs in all, ``n_sr``
    units in run ``sr`` and ``n_s`` in session ``s``, the sums of squares

    * ``SS_session = Σ_s n_s (ȳ_s − ȳ)²``, with ``a − 1`` degrees of freedom,
    * ``SS_run = Σ_sr n_sr (ȳ_sr − ȳ_s)²``, with ``b − a``,
    * ``SS_minute = Σ (y − ȳ_sr)²``, with ``N − b``,

    give mean squares whose expectations are ``E[MS_minute] = σ²_minute``,
    ``E[MS_run] = σ²_minute + k₁ σ²_run`` and
    ``E[MS_session] = σ²_minute + k₂ σ²_run + k₃ σ²_session``, with

    * ``k₁ = (N − Σ_s Σ_r n_sr² / n_s) / (b − a)``,
    * ``k₂ = (Σ_s Σ_r n_sr² / n_s − Σ n_sr² / N) / (a − 1)``,
    * ``k₃ = (N − Σ_s n_s² / N) / (a − 1)``.

    Solving these equations gives unbiased estimates; in a
    balanced design (R runs of U units) ``k₁ = k₂ = U`` and ``k₃ = RU``.

    Parameters
    ----------
    values : array-like of shape (n_units,)
        The pain of each unit (e.g. the 1-min rows of :func:`rating_units`).
    sessions, runs : array-like of shape (n_units,)
        Session and run label of each unit; runs are nested in sessions (run 1 of session 1 and run 1
        of session 2 are different runs).
    truncate : bool, default=True
        Set negative estimates (possible when a component is small) to 0 before computing shares, the
        usual convention. The untruncated estimate is kept in ``estimate``.

    Returns
    -------
    DataFrame
        One row per component, ``"session"``, ``"run"``, ``"minute"``: ``df``, ``ss``, ``ms``,
        ``estimate`` (the method-of-moments value), ``variance`` (truncated at 0 if ``truncate``),
        ``sd`` (its square root) and ``share`` (``variance`` over the sum of the three).
        ``attrs`` holds ``n_units``, ``n_sessions``, ``n_runs`` and the coefficients ``k1``, ``k2``,
        ``k3``.

    Raises
    ------
    DataFormatError
        If the inputs differ in length, hold a non-finite value, or the design cannot separate the
        components (fewer than 2 sessions, no session with 2 runs, or no run with 2 units).

    Examples
    --------
    >>> y = [1.0, 1.2, 2.0, 2.2, 5.0, 5.2, 6.0, 6.2]
    >>> ses = ["01"] * 4 + ["02"] * 4
    >>> run = [1, 1, 2, 2] * 2
    >>> vc = variance_components(y, ses, run)
    >>> vc["estimate"].round(3).tolist()
    [7.75, 0.49, 0.02]
    """
    y = np.asarray(values, dtype=float)
    ses = np.asarray(sessions).astype(str)
    run = np.asarray(runs).astype(str)
    if not (y.ndim == 1 and ses.shape == y.shape and run.shape == y.shape):
        raise DataFormatError(
            f"values, sessions and runs must be 1-D and of equal length; got shapes {y.shape}, "
            f"{ses.shape}, {run.shape}"
        )
    if not np.isfinite(y).all():
        raise DataFormatError(f"{int((~np.isfinite(y)).sum())} of {y.size} values are not finite")
    df = pd.DataFrame({"y": y, "s": ses, "r": run})
    cell = df.groupby(["s", "r"], sort=False)["y"].agg(["size", "mean"])
    n_sr = cell["size"].to_numpy(dtype=float)
    ses_of_cell = cell.index.get_level_values("s").to_numpy()
    n_s = cell.groupby(level="s", sort=False)["size"].sum()
    a, b, n = n_s.size, n_sr.size, float(y.size)
    if a < 2 or b - a < 1 or n - b < 1:
        raise DataFormatError(
            f"a nested variance decomposition needs at least 2 sessions, one session with 2 runs and "
            f"one run with 2 units; got {a} session(s), {b} run(s) and {int(n)} unit(s)"
        )
    grand = y.mean()
    mean_s = df.groupby("s", sort=False)["y"].mean()
    ss_session = float((n_s * (mean_s - grand) ** 2).sum())
    mean_s_of_cell = mean_s.loc[ses_of_cell].to_numpy()
    ss_run = float((n_sr * (cell["mean"].to_numpy() - mean_s_of_cell) ** 2).sum())
    fitted = cell["mean"].loc[list(zip(df["s"], df["r"]))].to_numpy()
    ss_minute = float(((y - fitted) ** 2).sum())
    dfs = np.array([a - 1, b - a, n - b], dtype=float)
    ss = np.array([ss_session, ss_run, ss_minute])
    ms = ss / dfs
    sum_sq_within = float((n_sr**2 / n_s.loc[ses_of_cell].to_numpy()).sum())
    k1 = (n - sum_sq_within) / (b - a)
    k2 = (sum_sq_within - float((n_sr**2).sum()) / n) / (a - 1)
    k3 = (n - float((n_s.to_numpy() ** 2).sum()) / n) / (a - 1)
    var_minute = ms[2]
    var_run = (ms[1] - ms[2]) / k1
    var_session = (ms[0] - ms[2] - k2 * var_run) / k3
    estimate = np.array([var_session, var_run, var_minute])
    variance = np.maximum(estimate, 0.0) if truncate else estimate
    total = variance.sum()
    out = pd.DataFrame({
        "component": list(COMPONENTS),
        "df": dfs.astype(int),
        "ss": ss,
        "ms": ms,
        "estimate": estimate,
        "variance": variance,
        "sd": np.sqrt(np.maximum(variance, 0.0)),
        "share": variance / total if total > 0 else np.full(3, np.nan),
    })
    out.attrs.update({"n_units": int(n), "n_sessions": int(a), "n_runs": int(b), "k1": k1, "k2": k2, "k3": k3})
    return out


# --------------------------------------------------------------------------------------------------
# Traces, censoring, sessions
# --------------------------------------------------------------------------------------------------


def rating_traces(
    participant: Participant,
    params: RatingParams = RatingParams(),
    *,
    frames: Mapping[tuple[str, int], RunFrames] | None = None,
) -> pd.DataFrame:
    """Every rating run's rating on the volume grid from 30 s on, unlagged and uncensored.

    This is what the original ``rating_TR`` figures show: ``rating_dat_orig`` after its first
    ``n_trim`` samples (``rating_tr[n_trim:]``), against the time of each volume on the rating clock,
    ``t_k = n_dummy·TR − tdummy + 0.5·TR + k·TR`` (methods §5.1).

    Parameters
    ----------
    participant : Participant
    params : RatingParams, optional
    frames : mapping of (session, run) to RunFrames, optional
        Aligned runs (e.g. :attr:`ParticipantFeatures.frames`); computed with
        :func:`~deipp_core.ratings.align_run` when omitted.

    Returns
    -------
    DataFrame
        Columns ``session``, ``run``, ``volume`` (0-based index after dummy removal), ``minute``
        (time on the rating clock, minutes) and ``rating``; runs in study order.
    """
    frames = _frames_of(participant, params, frames)
    parts = []
    for run in participant.rating_runs():
        rf = frames[(run.session, run.run)]
        n_trim = params.n_trim(run.tr)
        k = np.arange(n_trim, rf.rating_tr.size)
        t = params.n_dummy(run.tr) * run.tr - params.tdummy_s + 0.5 * run.tr + k * run.tr
        parts.append(pd.DataFrame({
            "session": run.session, "run": int(run.run), "volume": k, "minute": t / 60.0,
            "rating": rf.rating_tr[n_trim:],
        }))
    out = pd.concat(parts, ignore_index=True)
    return _study_order(out)


def censoring_table(participant: Participant, params: RatingParams = RatingParams()) -> pd.DataFrame:
    """Kept and censored volumes of every rating run.

    Parameters
    ----------
    participant : Participant
    params : RatingParams, optional
        Sets the analysis window: volumes ``n_trim + lag_tr … n_volumes − 1`` (the brain volumes that
        can be paired with a rating, methods §5.2).

    Returns
    -------
    DataFrame
        One row per rating run: ``session``, ``run``, ``n_volumes``, ``n_window`` (volumes in the
        analysis window), ``n_kept``, ``n_censored`` (censored volumes in the window),
        ``pct_censored`` (100·n_censored / n_window), ``pct_censored_run`` (over all volumes of the
        run) and ``mean_fd`` (mean censoring FD over the window, mm; NaN without a
        ``framewise_displacement`` column).
    """
    rows = []
    for run in participant.rating_runs():
        first = params.n_trim(run.tr) + params.lag_tr
        keep = run.censor
        window = keep[first:]
        fd = run.confounds.get("framewise_displacement")
        rows.append({
            "session": run.session,
            "run": int(run.run),
            "n_volumes": run.n_volumes,
            "n_window": int(window.size),
            "n_kept": int(window.sum()),
            "n_censored": int((~window).sum()),
            "pct_censored": 100.0 * float((~window).mean()) if window.size else float("nan"),
            "pct_censored_run": 100.0 * float((~keep).mean()) if keep.size else float("nan"),
            "mean_fd": float(np.nanmean(fd.to_numpy(dtype=float)[first:])) if fd is not None else float("nan"),
        })
    return _study_order(pd.DataFrame(rows))


def session_timeline(participant: Participant, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The participant's sessions in order, with acquisition times where the data set records them.

    Acquisition times are read from ``<root>/sub-XX/sub-XX_sessions.tsv`` (BIDS: columns
    ``session_id`` and ``acq_time``) when that file exists. Without it (or without ``root``) the
    timeline has the session index only, and ``attrs["source"]`` says so.

    Parameters
    ----------
    participant : Participant
    root : path-like, optional
        The BIDS root of the data set (:attr:`Dataset.root <deipp_core.data.dataset.Dataset>`).

    Returns
    -------
    DataFrame
        One row per session with rating runs: ``session`` (label), ``index`` (1-based order),
        ``n_rating_runs``, ``has_rest``, ``acq_time`` (datetime, NaT where unknown) and ``day``
        (days since the first session's acquisition, NaN where unknown). ``attrs["source"]`` is the
        path of the sessions file, or ``"session index only"``.

    Raises
    ------
    DataFormatError
        If the sessions file exists but lacks ``session_id``, or ``acq_time`` cannot be parsed.
    """
    sessions = sorted(participant.sessions, key=_session_key)
    table = pd.DataFrame({
        "session": sessions,
        "index": np.arange(1, len(sessions) + 1),
        "n_rating_runs": [len(participant.rating_runs(s)) for s in sessions],
        "has_rest": [participant.rest_run(s) is not None for s in sessions],
    })
    acq = pd.Series(pd.NaT, index=table.index, dtype="datetime64[ns]")
    source = "session index only"
    path = Path(root) / f"sub-{participant.label}" / f"sub-{participant.label}_sessions.tsv" if root else None
    if path is not None and path.is_file():
        info = pd.read_csv(path, sep="\t", dtype=str)
        if "session_id" not in info.columns:
            raise DataFormatError(
                f"{path}: a BIDS sessions file needs a 'session_id' column; found {list(info.columns)}"
            )
        if "acq_time" in info.columns:
            labels = info["session_id"].str.removeprefix("ses-")
            try:
                times = pd.to_datetime(info["acq_time"], errors="raise")
            except (ValueError, TypeError) as err:
                raise DataFormatError(
                    f"{path}: column 'acq_time' holds a value that is not a date/time ({err}); BIDS "
                    "expects ISO 8601, e.g. 2023-01-09T13:00:00"
                ) from err
            acq = table["session"].map(dict(zip(labels, times))).astype("datetime64[ns]")
            source = str(path)
            unknown = table.loc[acq.isna(), "session"].tolist()
            if unknown:
                logger.warning("%s gives no acq_time for session(s) %s", path, unknown)
        else:
            logger.info("%s has no acq_time column; the timeline uses the session index only", path)
    table["acq_time"] = acq
    first = acq.min()
    table["day"] = (acq - first).dt.total_seconds() / 86400.0 if pd.notna(first) else np.nan
    table.attrs["source"] = source
    return table


# --------------------------------------------------------------------------------------------------
# One participant, several participants
# --------------------------------------------------------------------------------------------------


@dataclass
class RatingOverview:
    """Everything the "Study and data" chapter shows for one participant.

    Attributes
    ----------
    participant : str
        Label, without ``sub-``.
    units : DataFrame
        :func:`rating_units`: the rating at the four levels with strip positions.
    summary : DataFrame
        :func:`summarize_levels`: mean, SD and n per level.
    variance : DataFrame
        :func:`variance_components` of the 1-min bins: between sessions, between runs within
        sessions, and within runs (minute to minute).
    traces : DataFrame
        :func:`rating_traces`: every run's rating on the volume grid from 30 s on.
    censoring : DataFrame
        :func:`censoring_table`: kept and censored volumes per run.
    timeline : DataFrame
        :func:`session_timeline`; ``timeline_source`` says where the dates came from.
    timeline_source : str
    """

    participant: str
    units: pd.DataFrame
    summary: pd.DataFrame
    variance: pd.DataFrame
    traces: pd.DataFrame
    censoring: pd.DataFrame
    timeline: pd.DataFrame
    timeline_source: str

    @property
    def n_sessions(self) -> int:
        """Number of sessions with rating runs."""
        return int(len(self.timeline))

    @property
    def has_dates(self) -> bool:
        """True when the timeline has acquisition times."""
        return bool(self.timeline["acq_time"].notna().any())


def rating_overview(
    participant: Participant,
    *,
    params: RatingParams = RatingParams(),
    root: str | os.PathLike | None = None,
    frames: Mapping[tuple[str, int], RunFrames] | None = None,
) -> RatingOverview:
    """Ratings, variance decomposition, censoring and timeline of one participant.

    Parameters
    ----------
    participant : Participant
        From :func:`deipp_core.data.load_dataset`.
    params : RatingParams, optional
        Trim, lag and bins (defaults = the original code). Must include 10 and 5 time bins.
    root : path-like, optional
        BIDS root of the data set, to read acquisition times (:func:`session_timeline`).
    frames : mapping of (session, run) to RunFrames, optional
        Already aligned runs (e.g. :attr:`ParticipantFeatures.frames`), to avoid aligning twice.

    Returns
    -------
    RatingOverview
    """
    frames = _frames_of(participant, params, frames)
    units = rating_units(frames)
    minutes = units[units["level"] == "1min"]
    variance = variance_components(minutes["rating"], minutes["session"], minutes["run"])
    timeline = session_timeline(participant, root)
    return RatingOverview(
        participant=participant.label,
        units=units,
        summary=summarize_levels(units),
        variance=variance,
        traces=rating_traces(participant, params, frames=frames),
        censoring=censoring_table(participant, params),
        timeline=timeline,
        timeline_source=timeline.attrs["source"],
    )


def overview_table(overviews: Mapping[str, RatingOverview]) -> pd.DataFrame:
    """One row per participant: sessions, study span, pain level and its variance split, censoring.

    Parameters
    ----------
    overviews : mapping of str to RatingOverview
        Row names (e.g. ``"Participant 1"``) → :func:`rating_overview` results.

    Returns
    -------
    DataFrame
        Indexed by the row names, columns ``n_sessions``, ``n_runs``, ``span_days`` (first to last
        acquisition; NaN without dates), ``mean_rating`` and ``sd_1min`` (mean and SD of the 1-min
        bins), ``sd_session`` (SD of the session means), ``share_session``, ``share_run``,
        ``share_minute`` (variance shares, :func:`variance_components`), ``n_censored`` and
        ``n_window`` (censored volumes and all volumes in the analysis window, summed over runs),
        ``pct_censored`` (their ratio, in %), ``median_kept`` (kept frames per run) and ``has_dates``
        (whether the timeline has acquisition times).
    """
    rows = {}
    for name, ov in overviews.items():
        share = ov.variance.set_index("component")["share"]
        summ = ov.summary.set_index("level")
        cen = ov.censoring
        rows[name] = {
            "n_sessions": ov.n_sessions,
            "n_runs": int(len(cen)),
            "span_days": float(ov.timeline["day"].max()) if ov.has_dates else float("nan"),
            "mean_rating": float(summ.loc["1min", "mean"]),
            "sd_1min": float(summ.loc["1min", "sd"]),
            "sd_session": float(summ.loc["session", "sd"]),
            "share_session": float(share["session"]),
            "share_run": float(share["run"]),
            "share_minute": float(share["minute"]),
            "n_censored": int(cen["n_censored"].sum()),
            "n_window": int(cen["n_window"].sum()),
            "pct_censored": 100.0 * cen["n_censored"].sum() / cen["n_window"].sum(),
            "median_kept": float(cen["n_kept"].median()),
            "has_dates": ov.has_dates,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def overview_sentence(table: pd.DataFrame) -> str:
    """One sentence per participant with the variance split of pain, for the chapter's prose.

    Parameters
    ----------
    table : DataFrame
        As returned by :func:`overview_table`.

    Returns
    -------
    str
        E.g. ``"Participant 1 (25 sessions): 31% between sessions, 12% between runs within a
        session, 57% within runs."``
    """
    parts = [
        f"{name} ({int(r['n_sessions'])} sessions): {r['share_session']:.0%} between sessions, "
        f"{r['share_run']:.0%} between runs within a session and {r['share_minute']:.0%} within runs"
        for name, r in table.iterrows()
    ]
    return "; ".join(parts) + "."


def sessions_sentence(table: pd.DataFrame) -> str:
    """How many sessions each participant had, and over how many days, for the chapter's prose.

    Parameters
    ----------
    table : DataFrame
        As returned by :func:`overview_table`.

    Returns
    -------
    str
        E.g. ``"Participant 1: 25 sessions over 187 days; Participant 2: 30 sessions over 205 days."``;
        without acquisition times the span is left out.
    """
    parts = []
    for name, r in table.iterrows():
        text = f"{name}: {int(r['n_sessions'])} sessions ({int(r['n_runs'])} rating runs)"
        if np.isfinite(r["span_days"]):
            text += f" over {r['span_days']:.0f} days"
        parts.append(text)
    return "; ".join(parts) + "."


# --------------------------------------------------------------------------------------------------
# Schematic
# --------------------------------------------------------------------------------------------------


def cofluctuation_example(
    n_samples: int = 500, n_shown: int = 375, cutoff: float = 0.01, seed: int = 2019
) -> pd.DataFrame:
    """Data of the edge co-fluctuation schematic: two smooth random series and their product.

    **An illustration, not data of the study.** The original (``analysis_visualize_misc_figures``,
    methods §13) draws two white-noise series with ``rng(2019)``, low-passes them with MATLAB
    ``lowpass(x, 0.01)`` (normalised passband 0.01·π rad/sample), z-scores them and plots them and
    their product, the edge time series ``e(t) = z_a(t)·z_b(t)`` (Zamani Esfahlani et al., PNAS 2020). Here
    the noise comes from :func:`numpy.random.default_rng` with ``seed`` and the low-pass filter is a
    4th-order zero-phase Butterworth filter with the same normalised cutoff, applied to a series three
    times longer of which the middle ``n_samples`` are kept (so the filter's start-up transient is not
    shown); the curves resemble but do not reproduce the original's.

    Parameters
    ----------
    n_samples : int, default=500
        Length of the simulated series.
    n_shown : int, default=375
        Number of leading samples returned (the original shows the first 375).
    cutoff : float, default=0.01
        Low-pass cutoff as a fraction of the Nyquist frequency, in (0, 1).
    seed : int, default=2019

    Returns
    -------
    DataFrame
        Columns ``sample``, ``a``, ``b`` (z-scored over all ``n_samples``, ddof = 1) and ``product``.

    Examples
    --------
    >>> ex = cofluctuation_example()
    >>> ex.shape
    (375, 4)
    >>> bool(np.allclose(ex["product"], ex["a"] * ex["b"]))
    True
    """
    if not (isinstance(n_samples, (int, np.integer)) and n_samples > 30):
        raise ParameterError(f"n_samples must be an integer > 30 (the filter needs padding); got {n_samples!r}")
    if not (isinstance(n_shown, (int, np.integer)) and 1 <= n_shown <= n_samples):
        raise ParameterError(f"n_shown must be an integer in [1, n_samples={n_samples}]; got {n_shown!r}")
    if not (0 < cutoff < 1):
        raise ParameterError(f"cutoff must lie in (0, 1) (fraction of Nyquist); got {cutoff!r}")
    rng = np.random.default_rng(seed)
    pad = n_samples  # filter a longer series and keep its middle: no start-up transient
    noise = rng.standard_normal((2, n_samples + 2 * pad))
    sos = signal.butter(4, cutoff, output="sos")
    smooth = signal.sosfiltfilt(sos, noise, axis=1)[:, pad : pad + n_samples]
    z = (smooth - smooth.mean(axis=1, keepdims=True)) / smooth.std(axis=1, ddof=1, keepdims=True)
    z = z[:, :n_shown]
    return pd.DataFrame({"sample": np.arange(n_shown), "a": z[0], "b": z[1], "product": z[0] * z[1]})


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _frames_of(participant: Participant, params: RatingParams, frames) -> dict:
    runs = participant.rating_runs()
    if not runs:
        raise DataFormatError(f"sub-{participant.label} has no rating run")
    if frames is None:
        return {(r.session, r.run): align_run(r, params) for r in runs}
    missing = [(r.session, r.run) for r in runs if (r.session, r.run) not in frames]
    if missing:
        raise DataFormatError(
            f"sub-{participant.label}: the aligned frames lack {len(missing)} rating run(s), e.g. "
            f"ses-{missing[0][0]} run-{missing[0][1]}; pass the frames of this participant's features"
        )
    return dict(frames)


def _study_order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by session (numerically for digit labels) then run, stable within a run."""
    rank = {s: i for i, s in enumerate(sorted(pd.unique(table["session"]), key=_session_key))}
    idx = np.lexsort((table["run"].to_numpy(), table["session"].map(rank).to_numpy()))
    return table.iloc[idx].reset_index(drop=True)
