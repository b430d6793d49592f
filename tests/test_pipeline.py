"""The three-stage decode/compute/encode pipeline of folders (litesr.pipeline)."""

from __future__ import annotations

import threading

from litesr.pipeline import pipelined


def test_pipeline_decodes_ahead_while_the_model_works_and_keeps_order():
    second_loaded = threading.Event()

    def load(job):
        if job == 1:
            second_loaded.set()
        if job == 3:
            raise ValueError("broken file")
        return job * 10

    def compute(job, value):
        if job == 0:  # the next image is decoded while this one is computed
            assert second_loaded.wait(timeout=20)
        return value + 1

    stored = []
    results = list(pipelined(range(6), load, compute, lambda job, value: stored.append((job, value))))
    assert [job for job, _ in results] == list(range(6))
    assert [type(error).__name__ if error else None for _, error in results] == [None, None, None, "ValueError",
                                                                                 None, None]
    assert stored == [(0, 1), (1, 11), (2, 21), (4, 41), (5, 51)]


def test_pipeline_stops_cleanly_when_closed_early():
    seen = []
    pipeline = pipelined(range(1000), lambda j: j, lambda j, v: v, lambda j, v: seen.append(j), prefetch=2)
    assert next(pipeline) == (0, None)
    pipeline.close()
    assert len(seen) < 20
    assert not [t for t in threading.enumerate() if t.name in ("litesr-decode", "litesr-encode")]
