"""Blind MOS sessions in SQLite: 1-5 absolute ratings and A/B preferences, MOS with 95% confidence intervals.

The database lives in the session folder (``ratings.sqlite``), in WAL mode with full synchronisation: every answer is
one transaction, so a server killed at any moment leaves every answer given so far and a consistent file. Conditions
(``HR``, ``bicubic``, model labels) are stored by name; the page only ever sees trial numbers, never which model it
is rating.
"""

from __future__ import annotations

import csv
import io
import math
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from ..errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, rater TEXT NOT NULL, grp TEXT NOT NULL, seed INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    session TEXT NOT NULL REFERENCES sessions(id), idx INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('abs', 'ab')), image TEXT NOT NULL, cond_a TEXT NOT NULL, cond_b TEXT,
    PRIMARY KEY (session, idx));
CREATE TABLE IF NOT EXISTS ratings (
    session TEXT NOT NULL, trial INTEGER NOT NULL, image TEXT NOT NULL, condition TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5), created REAL NOT NULL, PRIMARY KEY (session, trial));
CREATE TABLE IF NOT EXISTS preferences (
    session TEXT NOT NULL, trial INTEGER NOT NULL, image TEXT NOT NULL, cond_a TEXT NOT NULL, cond_b TEXT NOT NULL,
    winner TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (session, trial));
"""

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom; above, the Cornish-Fisher expansion (error
# under 1e-4 there).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Trial:
    index: int
    kind: str  # "abs": rate one image 1-5; "ab": which of two is better
    image: str
    cond_a: str
    cond_b: str | None = None


def plan_trials(images: list[str], conditions: list[str], pair_conditions: list[str], seed: int) -> list[Trial]:
    """Every (image, condition) rated once, and every pair of ``pair_conditions`` per image compared once, with a
    random side for each pair; all in one random order (seeded, so a session can be rebuilt)."""
    rng = random.Random(seed)
    items: list[tuple[str, str, str, str | None]] = [("abs", im, c, None) for im in images for c in conditions]
    for im in images:
        for a, b in combinations(pair_conditions, 2):
            items.append(("ab", im, *((a, b) if rng.random() < 0.5 else (b, a))))
    rng.shuffle(items)
    return [Trial(i, *item) for i, item in enumerate(items)]


class RatingStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per operation: requests run in a thread pool, and sqlite3 connections are per thread.
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    def create_session(self, rater: str, group: str, trials_of) -> tuple[str, list[Trial]]:  # noqa: ANN001
        """A new session; ``trials_of(seed)`` plans its trials. Session and trials are written in one transaction."""
        session_id = uuid.uuid4().hex[:16]
        seed = random.SystemRandom().randrange(2**31)
        trials = trials_of(seed)
        if not trials:
            raise ConfigError("nothing to rate: this run has no images")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", (session_id, rater, group, seed, time.time()))
            db.executemany("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                           [(session_id, t.index, t.kind, t.image, t.cond_a, t.cond_b) for t in trials])
            db.execute("COMMIT")
        return session_id, trials

    def session(self, session_id: str) -> tuple[str, list[Trial]] | None:
        with self._connect() as db:
            row = db.execute("SELECT grp FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return None
            rows = db.execute("SELECT idx, kind, image, cond_a, cond_b FROM trials WHERE session = ? ORDER BY idx",
                              (session_id,)).fetchall()
        return row[0], [Trial(*r) for r in rows]

    def answered(self, session_id: str) -> set[int]:
        with self._connect() as db:
            rows = db.execute("SELECT trial FROM ratings WHERE session = ? UNION SELECT trial FROM preferences "
                              "WHERE session = ?", (session_id, session_id)).fetchall()
        return {r[0] for r in rows}

    def answer(self, session_id: str, trial: Trial, *, score: int | None = None, choice: str | None = None) -> None:
        """Store one answer (replacing an earlier answer to the same trial), atomically."""
        with self._connect() as db:
            if trial.kind == "abs":
                if score is None or not 1 <= int(score) <= 5:
                    raise ConfigError("a rating is a score from 1 (bad) to 5 (excellent)")
                db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                           (session_id, trial.index, trial.image, trial.cond_a, int(score), time.time()))
            else:
                if choice not in ("a", "b"):
                    raise ConfigError("a preference is 'a' (left) or 'b' (right)")
                winner = trial.cond_a if choice == "a" else trial.cond_b
                db.execute("INSERT OR REPLACE INTO preferences VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (session_id, trial.index, trial.image, trial.cond_a, trial.cond_b, winner, time.time()))

    # --------------------------------------------------------------------------------------------------- results

    def mos(self, group: str | None = None) -> list[dict]:
        """Per condition: number of ratings, MOS, standard deviation and the 95% t confidence interval."""
        where, params = ("WHERE s.grp = ?", (group,)) if group else ("", ())
        with self._connect() as db:
            rows = db.execute(f"SELECT r.condition, r.score FROM ratings r JOIN sessions s ON s.id = r.session {where}",
                              params).fetchall()
        by: dict[str, list[int]] = {}
        for condition, score in rows:
            by.setdefault(condition, []).append(score)
        table = []
        for condition, scores in by.items():
            n = len(scores)
            mean = sum(scores) / n
            sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else math.nan
            half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
            table.append({"condition": condition, "n": n, "mos": mean, "sd": sd, "ci95_low": mean - half,
                          "ci95_high": mean + half})
        return sorted(table, key=lambda r: -r["mos"])

    def preferences(self, group: str | None = None) -> list[dict]:
        """Per condition: A/B comparisons it took part in, wins, win rate and its 95% Wilson interval."""
        where, params = ("WHERE s.grp = ?", (group,)) if group else ("", ())
        with self._connect() as db:
            rows = db.execute(f"SELECT p.cond_a, p.cond_b, p.winner FROM preferences p JOIN sessions s "
                              f"ON s.id = p.session {where}", params).fetchall()
        counts: dict[str, list[int]] = {}
        for a, b, winner in rows:
            for c in (a, b):
                entry = counts.setdefault(c, [0, 0])
                entry[1] += 1
                entry[0] += c == winner
        table = []
        for condition, (wins, n) in counts.items():
            low, high = wilson_interval(wins, n)
            table.append({"condition": condition, "comparisons": n, "wins": wins, "win_rate": wins / n,
                          "ci95_low": low, "ci95_high": high})
        return sorted(table, key=lambda r: -r["win_rate"])

    def results_csv(self, group: str | None = None) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["kind", "condition", "n", "mos_or_win_rate", "sd", "ci95_low", "ci95_high"])
        for r in self.mos(group):
            writer.writerow(["mos", r["condition"], r["n"], _fmt(r["mos"]), _fmt(r["sd"]), _fmt(r["ci95_low"]),
                             _fmt(r["ci95_high"])])
        for r in self.preferences(group):
            writer.writerow(["preference", r["condition"], r["comparisons"], _fmt(r["win_rate"]), "",
                             _fmt(r["ci95_low"]), _fmt(r["ci95_high"])])
        return buf.getvalue()


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    if n == 0:
        return math.nan, math.nan
    z = _Z975
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.4f}"
