"""The studio's upscale jobs: one worker thread, one bounded queue, progress from the engine, cancellation.

A job runs exactly what ``litesr upscale`` runs for one image (model building, fast-path preparation, automatic
tiling, naming and writing of :mod:`litesr.upscale_jobs`), so a studio result is byte for byte the command's output.
The engine's ``progress`` callback (:func:`litesr.inference.upscale_tensor`) updates the job and is where a cancelled
job stops, between two forward passes. Results are written atomically (temp file + rename): a server killed mid-job
leaves no half-written image.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LitesrError

if TYPE_CHECKING:
    from torch import nn

    from ..upscale_jobs import EngineOptions
    from .catalog import ModelCatalog, ModelEntry

STATES = ("queued", "running", "done", "failed", "cancelled")
_MODELS_KEPT = 2  # prepared models kept between jobs (switching back and forth costs no reload)


class JobCancelled(Exception):
    """Raised from the progress callback to stop a cancelled job between two forward passes."""


class QueueFull(LitesrError):
    """The job queue holds its maximum: the client gets a 'busy, retry' answer."""


@dataclass(frozen=True)
class JobRequest:
    source: Path  # the uploaded image, inside the session folder
    display_name: str
    model: ModelEntry
    scale: int
    tile: int | None  # None: as litesr upscale (automatic above 1 MP); 0: never
    precision: str
    result_dir: Path  # the session's results folder; each job writes into <result_dir>/<job id>/


@dataclass
class Job:
    id: str
    request: JobRequest
    state: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    result: Path | None = None
    result_size: tuple[int, int] | None = None
    created: float = field(default_factory=time.time)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def to_json(self, position: int | None = None) -> dict:
        progress = 1.0 if self.state == "done" else (self.done / self.total if self.total else 0.0)
        return {
            "id": self.id, "state": self.state, "name": self.request.display_name, "model": self.request.model.label,
            "scale": self.request.scale, "progress": round(progress, 4), "done": self.done, "total": self.total,
            "error": self.error, "position": position,
            "result": None if self.result is None else {
                "name": self.result.name, "width": self.result_size[0], "height": self.result_size[1]},
        }


class JobQueue:
    """Jobs run one at a time in a daemon thread, in submission order."""

    def __init__(self, catalog: ModelCatalog, *, device: str | None = None, max_queued: int = 64,
                 max_pixels: int | None = None) -> None:
        self.catalog = catalog
        self.device = device
        self.max_pixels = max_pixels
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queued)
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._models: OrderedDict[tuple, nn.Module] = OrderedDict()
        self._thread = threading.Thread(target=self._work, name="litesr-studio-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------------ client side

    def submit(self, request: JobRequest) -> Job:
        job = Job(uuid.uuid4().hex[:16], request)
        with self._lock:
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise QueueFull(f"busy: {self._queue.maxsize} jobs are waiting; try again when some are done") from None
            self._jobs[job.id] = job
            self._order.append(job.id)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """How many queued jobs are ahead of this one (None once it runs)."""
        if job.state != "queued":
            return None
        with self._lock:
            ahead = [j for j in (self._jobs[i] for i in self._order) if j.state == "queued" and j.created < job.created]
        return len(ahead)

    def jobs(self) -> list[Job]:
        with self._lock:
            return [self._jobs[i] for i in self._order]

    def cancel(self, job: Job) -> None:
        job.cancel_requested.set()
        with self._lock:
            if job.state == "queued":
                job.state = "cancelled"  # the worker skips it when it comes up

    def stop(self) -> None:
        """Ask the worker to finish after the current job (used on shutdown and by tests)."""
        for job in self.jobs():
            self.cancel(job)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def wait_idle(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(j.state in ("done", "failed", "cancelled") for j in self.jobs()):
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------------------------------------ worker side

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state == "cancelled":
                    continue
                job.state = "running"
            try:
                self._run(job)
                state = "done"
            except JobCancelled:
                state = "cancelled"
            except LitesrError as exc:
                job.error, state = str(exc), "failed"
            except Exception as exc:  # noqa: BLE001 - one broken job must not stop the worker; the page shows why
                job.error, state = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", "failed"
            with self._lock:
                job.state = state

    def _run(self, job: Job) -> None:
        from ..images import read_image, write_image
        from ..upscale_jobs import plan_jobs, upscale

        request = job.request

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            if job.cancel_requested.is_set():
                raise JobCancelled

        model, options = self._model(request)
        image = read_image(request.source, max_pixels=self.max_pixels)
        progress(0, 1)
        result = upscale(model, image, options, request.display_name, progress=progress)
        if job.cancel_requested.is_set():
            raise JobCancelled
        # The name litesr upscale would give: <stem>_x<scale> in the input's format (PNG for formats it cannot write).
        named = plan_jobs([request.source], None, suffix=f"_x{request.scale}", overwrite=True)[0].target
        target = request.result_dir / job.id / named.name
        write_image(target, result)
        job.result, job.result_size = target, (result.width, result.height)

    def _model(self, request: JobRequest) -> tuple[nn.Module, EngineOptions]:
        """The prepared model and engine options for a request, as litesr upscale builds them (cached)."""
        from ..upscale_jobs import build_model, engine_options, prepare

        entry = request.model
        options = engine_options(device=self.device, precision=request.precision, tile=request.tile)
        key = (entry.id, _file_version(entry.weights), request.scale, options.precision.precision, str(options.device))
        model = self._models.get(key)
        if model is None:
            built, _ = build_model(entry.zoo_name, weights=entry.weights, scale=request.scale)
            model = self._models[key] = prepare(built, options)
            while len(self._models) > _MODELS_KEPT:
                self._models.popitem(last=False)
        self._models.move_to_end(key)
        return model, options


def _file_version(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
