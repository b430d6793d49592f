"""The MOS statistics of litesr studio against scipy, and the trial plan of a blind session."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("fastapi", reason="litesr studio needs the studio extra (pip install 'litesr[studio]')")

from litesr.studio.ratings import RatingStore, plan_trials, t_quantile_975, wilson_interval  # noqa: E402


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats", reason="scipy is the reference for Student's t")
    for df in [*range(1, 61), 80, 120, 500, 10_000]:
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4), df


def test_wilson_interval_inverts_the_score_test() -> None:
    """Wilson's bounds are the p at which the score test |p_hat - p| / sqrt(p (1 - p) / n) reaches z: found here with
    scipy's root finder, independently of the closed form litesr uses."""
    stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    from scipy.optimize import brentq

    z = stats.norm.ppf(0.975)
    for wins, n in [(1, 6), (5, 6), (37, 80), (3, 3)]:
        p_hat = wins / n

        def score(p: float, p_hat: float = p_hat, n: int = n) -> float:
            return abs(p_hat - p) / math.sqrt(p * (1 - p) / n) - z

        low = brentq(score, 1e-12, min(p_hat, 1 - 1e-12)) if wins > 0 else 0.0
        high = brentq(score, max(p_hat, 1e-12), 1 - 1e-12) if wins < n else 1.0
        assert wilson_interval(wins, n) == pytest.approx((low, high), abs=1e-9)


def test_trial_plan_covers_every_condition_once_in_random_order() -> None:
    trials = plan_trials(["a", "b", "c"], ["HR", "bicubic", "m1", "m2"], ["bicubic", "m1", "m2"], seed=3)
    absolute = [(t.image, t.cond_a) for t in trials if t.kind == "abs"]
    pairs = [(t.image, frozenset((t.cond_a, t.cond_b))) for t in trials if t.kind == "ab"]
    assert sorted(absolute) == sorted((i, c) for i in "abc" for c in ("HR", "bicubic", "m1", "m2"))
    assert len(pairs) == len(set(pairs)) == 9
    assert [t.index for t in trials] == list(range(21))
    assert trials != plan_trials(["a", "b", "c"], ["HR", "bicubic", "m1", "m2"], ["bicubic", "m1", "m2"], seed=4)
    assert plan_trials(["a"], ["x", "y"], [], seed=1) == plan_trials(["a"], ["x", "y"], [], seed=1)


def test_mos_table_and_csv_from_stored_answers(tmp_path) -> None:
    store = RatingStore(tmp_path / "r.sqlite")
    session, trials = store.create_session("r", "Set5 x2", lambda seed: plan_trials(
        ["a", "b", "c"], ["HR", "m1"], ["HR", "m1"], seed))
    scores = {"HR": [5, 4, 5], "m1": [2, 3, 1]}
    for trial in trials:
        if trial.kind == "abs":
            store.answer(session, trial, score=scores[trial.cond_a].pop())
        else:
            store.answer(session, trial, choice="a" if trial.cond_a == "HR" else "b")
    with pytest.raises(Exception, match="score from 1"):
        store.answer(session, next(t for t in trials if t.kind == "abs"), score=6)
    mos = {r["condition"]: r for r in store.mos()}
    assert mos["HR"]["mos"] == pytest.approx(14 / 3) and mos["m1"]["mos"] == pytest.approx(2.0)
    sd = math.sqrt(((5 - 14 / 3) ** 2 * 2 + (4 - 14 / 3) ** 2) / 2)
    assert mos["HR"]["ci95_high"] - mos["HR"]["mos"] == pytest.approx(4.303 * sd / math.sqrt(3))
    prefs = {r["condition"]: r for r in store.preferences()}
    assert (prefs["HR"]["wins"], prefs["HR"]["comparisons"], prefs["m1"]["wins"]) == (3, 3, 0)
    lines = store.results_csv().splitlines()
    assert lines[1].startswith("mos,HR,3,4.6667,") and lines[-1].startswith("preference,m1,3,0.0000,")
    assert store.mos("another group") == []
