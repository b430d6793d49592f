"""Decode, compute and encode of a list of jobs in three stages, so that decoding the next image and encoding the
last one overlap the model's work (``litesr upscale`` of folders, the studio's queue)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

Job = TypeVar("Job")
_DONE = object()


def pipelined(
    jobs: Iterable[Job],
    load: Callable[[Job], Any],
    compute: Callable[[Job, Any], Any],
    store: Callable[[Job, Any], None],
    *,
    prefetch: int = 2,
) -> Iterator[tuple[Job, BaseException | None]]:
    """Run ``store(job, compute(job, load(job)))`` for every job, with loading and storing in background threads.

    ``compute`` runs in the calling thread (the model), while a loader thread decodes up to ``prefetch`` jobs ahead
    and a writer thread encodes finished ones. Yields ``(job, error)`` in job order once the job is stored (or has
    failed: ``error`` is the exception of whichever stage failed; later jobs still run). Closing the iterator early
    stops both threads after the jobs in flight.
    """
    loaded: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    finished: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    results: queue.Queue = queue.Queue()
    stop = threading.Event()

    def loader() -> None:
        for job in jobs:
            if stop.is_set():
                break
            try:
                item: tuple = (job, load(job), None)
            except Exception as exc:  # noqa: BLE001 - handed to the caller with its job
                item = (job, None, exc)
            loaded.put(item)
        loaded.put(_DONE)

    def writer() -> None:
        while (item := finished.get()) is not _DONE:
            job, value, error = item
            if error is None:
                try:
                    store(job, value)
                except Exception as exc:  # noqa: BLE001
                    error = exc
            results.put((job, error))
        results.put(_DONE)

    threads = [threading.Thread(target=loader, name="litesr-decode", daemon=True),
               threading.Thread(target=writer, name="litesr-encode", daemon=True)]
    for thread in threads:
        thread.start()

    def drain() -> Iterator[tuple[Job, BaseException | None]]:
        while not results.empty():
            item = results.get()
            if item is not _DONE:
                yield item

    writer_told = False
    try:
        while (item := loaded.get()) is not _DONE:
            job, value, error = item
            if error is None:
                try:
                    value = compute(job, value)
                except Exception as exc:  # noqa: BLE001
                    value, error = None, exc
            finished.put((job, value, error))
            yield from drain()
        finished.put(_DONE)
        writer_told = True
        while (item := results.get()) is not _DONE:
            yield item
    finally:
        stop.set()
        while threads[0].is_alive():  # a loader blocked on a full queue must get room to see the stop
            try:
                loaded.get(timeout=0.05)
            except queue.Empty:
                pass
        if not writer_told:
            finished.put(_DONE)
        for thread in threads:
            thread.join(timeout=60)
