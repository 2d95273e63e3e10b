"""Calibration of the digital twin against the paper's qualitative results (issue 3).

The paper-scale test generates the default twin (``TwinConfig.paper()``) for two seeds, runs the exact
decoder and checks the calibration targets, judged as the issue asks at the 1-min and 2-min levels:

* held-out r and AUC at the 1-min and 2-min levels within the paper's ranges over the four levels
  (participant 1: r 0.40–0.61, AUC 0.71–0.87; participant 2: r 0.51–0.65, AUC 0.76–0.93), with a
  tolerance of ``TOL_R`` / ``TOL_AUC`` because one realisation of 25–30 sessions scatters;
* at the run and session levels (25–30 sessions × 3 runs, autocorrelated) only a floor (the paper's
  lower bound − ``TOL_R``) and a ceiling ``RUN_SESSION_CEILING``: the twin overshoots the paper's upper
  bound there (up to +0.16 with seed 1), a known miss stated in ``book/data-sources.md``;
* the training-size curve (§10.7): with m = 4 training sessions — a conventional amount — well
  under half of the repetitions are significant at the 1-min level; with S − 2 sessions nearly all;
* no cross-participant generalisation: the other participant's final model gives 1-min |r| small.

Measured with the defaults (n_jobs 2; ``make test-paper``: 4 min 52 s for seed 0 on a quiet
machine; seed 1 with the script equivalent of this test, 283 s):

======  ============  =======================  =======================  ==========================
seed    participant   r (1 min, 2 min, run,    AUC (same levels)        % significant at 1 min for
                      session)                                          m = 1, 2, 4, 8, 16, S − 2
======  ============  =======================  =======================  ==========================
0       01 (S = 25)   0.47, 0.60, 0.66, 0.69   0.74, 0.79, 0.86, 0.83   0, 5, 30, 95, 100, 100
0       02 (S = 30)   0.51, 0.61, 0.72, 0.69   0.73, 0.77, 0.84, 0.78   0, 0, 25, 100, 100, 100
1       01 (S = 25)   0.56, 0.65, 0.75, 0.77   0.76, 0.79, 0.85, 0.91   5, 10, 0, 100, 100, 100
1       02 (S = 30)   0.50, 0.58, 0.71, 0.71   0.71, 0.78, 0.81, 0.83   10, 0, 20, 100, 100, 100
======  ============  =======================  =======================  ==========================

Outside the paper's ranges (inside the tolerances): participant 2's 1-min AUC (0.73 and 0.71 against
0.76) and, with seed 1, participant 1's 2-min r (0.65 against 0.61). Beyond them, allowed by the
looser run/session ceiling: the run and session r (up to +0.075 above the upper bound with seed 0,
+0.16 with seed 1). Mean 1-min r at m = 4: 0.12 / 0.11 (seed 0), 0.05 / 0.10 (seed 1).
Cross-participant r (final model of one applied to the other), 1 min / 2 min: seed 0 01→02 −0.09 /
−0.16, 02→01 −0.09 / −0.13; seed 1 −0.07 / −0.06 and −0.04 / −0.03. The probe's setting (K = 1,
γ = 0.8, modules of 20, no gain variation) gave, for participant 1, 5, 50, 100, 100, 100, 100 %
significant at the same sizes.

The fast test checks the mechanism that steepens the curve (``n_coupling_signals``, see
:mod:`deipp_core.data.twin`) at a small scale: with the same coupling gain and seed, the twin with
one coupling signal is learnt from one or two sessions clearly better than the twin with several.
"""

from __future__ import annotations

import pytest

from deipp_core.analyses.cross_participant import cross_participant
from deipp_core.analyses.prediction import run_prediction
from deipp_core.analyses.training_size import training_size
from deipp_core.data import load_dataset
from deipp_core.data.twin import TwinConfig, generate_twin
from deipp_core.features import participant_features
from deipp_core.model import nested_loso

#: The paper's reported ranges over the four levels (r, AUC) per participant.
PAPER_RANGES = {"01": ((0.40, 0.61), (0.71, 0.87)), "02": ((0.51, 0.65), (0.76, 0.93))}
TOL_R = 0.08
TOL_AUC = 0.06
#: Ceiling of the run- and session-level r (the twin overshoots the paper there; see the docstring).
RUN_SESSION_CEILING = 0.85
#: % of significant repetitions at the 1-min level: ceiling at m = 4, floor at m = S − 2.
MAX_SIG_AT_4 = 50.0
MIN_SIG_AT_END = 90.0
#: Largest |r| of a cross-participant prediction at the 1-min and 2-min levels.
MAX_CROSS_R = {"1min": 0.15, "2min": 0.2}


def _small_m_accuracy(tmp_path, n_coupling_signals: int, seed: int) -> float:
    """Mean held-out 1-min r over 1 and 2 training sessions of a small one-participant twin."""
    config = TwinConfig.quick(
        participants=("01",), n_sessions=(6,), pain_mean=(0.45,),
        module_networks=TwinConfig.quick().module_networks[:1], n_parcels=120, module_size=12,
        include_rest=False, n_coupling_signals=n_coupling_signals, coupling_gain=0.8,
    )
    root = generate_twin(tmp_path / f"k{n_coupling_signals}-s{seed}", config, seed=seed)
    feats = participant_features(load_dataset(root)["01"], include_rest=False)
    X, rows = feats.select("rbin10")
    cv = nested_loso(X, rows["rating"].to_numpy(), rows["session"].to_numpy())
    res = training_size(feats, cv, sizes=[1, 2], n_reps=8, n_boot=20, seed=0, progress=False)
    one_min = res.summary[res.summary["level"] == "1min"]
    return float(one_min["mean_r"].mean())


def test_several_coupling_signals_make_small_training_sets_fail(tmp_path):
    """Removing the mechanism (K = 1) makes 1–2 training sessions clearly more accurate.

    Measured (seed 1): mean 1-min r over m = 1, 2 is 0.224 with K = 1 and 0.099 with K = 4 (seed 2:
    −0.035 and −0.106; with so few sessions r can be negative, the leave-one-session-out
    anti-correlation).
    """
    k = TwinConfig.paper().n_coupling_signals
    assert k > 1, "the paper twin must keep several coupling signals (the calibrated mechanism)"
    gap = _small_m_accuracy(tmp_path, 1, seed=1) - _small_m_accuracy(tmp_path, 4, seed=1)
    assert gap > 0.05, gap


@pytest.mark.slow
@pytest.mark.paper_scale
@pytest.mark.parametrize("seed", [0, 1])
def test_paper_scale_twin_reproduces_the_papers_qualitative_results(tmp_path, seed):
    root = generate_twin(tmp_path / "paper", TwinConfig.paper(), seed=seed, n_jobs=2)
    dataset = load_dataset(root)
    results, feats = {}, {}
    for label in ("01", "02"):
        feats[label] = participant_features(dataset[label], n_jobs=2)
        res = run_prediction(dataset[label], profile="quick", features=feats[label], n_jobs=2)
        results[label] = res
        m = res.metrics.set_index("level")
        (r_lo, r_hi), (a_lo, a_hi) = PAPER_RANGES[label]
        for level in ("1min", "2min"):
            assert r_lo - TOL_R <= m.loc[level, "r"] <= r_hi + TOL_R, (label, level, m.loc[level, "r"])
            auc = m.loc[level, "auc"]
            assert a_lo - TOL_AUC <= auc <= a_hi + TOL_AUC, (label, level, auc)
        for level in ("run", "session"):
            assert r_lo - TOL_R <= m.loc[level, "r"] <= RUN_SESSION_CEILING, (label, level, m.loc[level, "r"])
        S = feats[label].n_sessions
        ts = training_size(feats[label], res.cv, sizes=[1, 2, 4, S - 2], n_reps=20, n_boot=500,
                           n_jobs=2, progress=False)
        sig = ts.summary[ts.summary["level"] == "1min"].set_index("n_session")["frac_significant"] * 100
        assert sig[4] < MAX_SIG_AT_4, (label, sig.to_dict())
        assert sig[S - 2] >= MIN_SIG_AT_END, (label, sig.to_dict())
        assert sig[S - 2] > sig[4] >= min(sig[1], sig[2]) - 10, (label, sig.to_dict())
    for train, test in (("01", "02"), ("02", "01")):
        cross = cross_participant(results[train], feats[test], n_boot=200).metrics.set_index("level")
        for level in ("1min", "2min"):
            r = cross.loc[level, "r"]
            assert abs(r) < MAX_CROSS_R[level], (train, test, level, r)
