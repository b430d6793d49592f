"""The studio's web application (FastAPI): pages from ``static/``, a JSON API for uploads, jobs, runs and ratings.

Everything a request names is an id checked against what the server listed (upload ids, job ids, model ids, run
groups, image names, trial numbers); files live in the session folder only. State-changing requests from another
origin are refused, and the Host header must be one this server answers to (no DNS rebinding onto a local port).
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..errors import ConfigError, DatasetError, ImageError, LitesrError
from .catalog import ModelCatalog
from .jobs import JobQueue, JobRequest, QueueFull
from .ratings import RatingStore, plan_trials
from .runs import BICUBIC, HR, RunImages, load_runs
from .uploads import UploadError, UploadStore

STATIC = Path(__file__).parent / "static"
PAGES = {"/": "upscale.html", "/compare": "compare.html", "/rate": "rate.html", "/results": "results.html"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Formats browsers show; others (TIFF, 16-bit PPM ...) are previewed as PNG.
_BROWSER_FORMATS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


@dataclass
class StudioConfig:
    session_dir: Path
    models_dir: Path | None = None
    runs: list[Path] = field(default_factory=list)
    max_upload_bytes: int = 64 * 2**20
    max_pixels: int | None = None  # None: litesr's default ($LITESR_MAX_PIXELS or 64 MP)
    max_queued_jobs: int = 64
    max_parallel_uploads: int = 8
    device: str | None = None
    host: str = "127.0.0.1"
    allowed_hosts: list[str] | None = None  # None: the bind host and the loopback names


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def create_app(config: StudioConfig) -> FastAPI:
    session = config.session_dir
    session.mkdir(parents=True, exist_ok=True)
    catalog = ModelCatalog(config.models_dir)
    uploads = UploadStore(session / "uploads", max_bytes=config.max_upload_bytes, max_pixels=config.max_pixels)
    ratings = RatingStore(session / "ratings.sqlite")
    groups = load_runs(config.runs)
    images = RunImages(groups, session / "cache")
    results_dir = session / "results"
    _remove_partial_outputs(results_dir)
    uploads.clean_stale()
    queue = JobQueue(catalog, device=config.device, max_queued=config.max_queued_jobs, max_pixels=config.max_pixels)
    in_flight = {"uploads": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        queue.stop()

    app = FastAPI(title="litesr studio", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config, app.state.queue, app.state.ratings = config, queue, ratings
    hosts = config.allowed_hosts
    if hosts is None:
        hosts = ["*"] if config.host in ("0.0.0.0", "::") else [*LOOPBACK, "[::1]", config.host]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)

    @app.middleware("http")
    async def same_origin_writes(request: Request, call_next):  # noqa: ANN001, ANN202
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and origin.split("://", 1)[-1] != request.headers.get(
                "host"):
            return _error(403, f"refused: a request from {origin} may not change this studio")
        return await call_next(request)

    @app.exception_handler(LitesrError)
    async def litesr_error(request: Request, exc: LitesrError) -> JSONResponse:
        if isinstance(exc, UploadError):
            return _error(exc.status, str(exc))
        if isinstance(exc, QueueFull):
            return _error(503, str(exc), **{"Retry-After": "2"})
        return _error(400, str(exc))

    for route, page in PAGES.items():
        app.add_api_route(route, _page(page), methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ----------------------------------------------------------------------------------------------------- upscale

    @app.get("/api/info")
    def info() -> dict:
        from ..images import resolve_max_pixels
        from ..inference import PRECISIONS

        return {"max_upload_bytes": config.max_upload_bytes, "max_pixels": resolve_max_pixels(config.max_pixels),
                "precisions": list(PRECISIONS), "groups": [g.key for g in groups]}

    @app.get("/api/models")
    def models() -> list[dict]:
        return [e.to_json() for e in catalog.entries()]

    @app.post("/api/uploads")
    async def upload(request: Request, name: str = "image.png") -> Response:
        length = request.headers.get("content-length")
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        slack = 64 * 1024 if multipart else 0  # the form's boundaries and headers
        if length is not None and length.isdigit() and int(length) > config.max_upload_bytes + slack:
            return _error(413, f"{name}: file is over the upload limit of {config.max_upload_bytes / 2**20:.0f} MB")
        if in_flight["uploads"] >= config.max_parallel_uploads:
            return _error(503, f"busy: {in_flight['uploads']} uploads are being received; try again in a moment",
                          **{"Retry-After": "1"})
        in_flight["uploads"] += 1
        try:
            if multipart:
                form = await request.form(max_files=1, max_fields=4)
                part = form.get("file")
                if part is None or isinstance(part, str):
                    return _error(400, "the form has no file field named 'file'")
                name = part.filename or name

                async def chunks():  # noqa: ANN202
                    while block := await part.read(1 << 20):
                        yield block

                stored = await uploads.receive(name, chunks(), run_in_threadpool)
            else:
                stored = await uploads.receive(name, request.stream(), run_in_threadpool)
        finally:
            in_flight["uploads"] -= 1
        return JSONResponse(stored.to_json(), status_code=201)

    @app.get("/api/uploads/{upload_id}/image")
    def upload_image(upload_id: str) -> Response:
        return _viewable(uploads.get(upload_id), session / "cache" / "previews" / f"upload_{upload_id}.png")

    @app.post("/api/jobs")
    async def submit(request: Request) -> Response:
        body = await _json(request)
        source = uploads.get(str(body.get("upload", "")))
        entry = catalog.get(str(body.get("model", "")))
        scale = _int(body.get("scale", entry.scales[0] if entry.scales else 2), "scale")
        if scale not in entry.scales:
            raise ConfigError(f"{entry.label} runs at {', '.join(f'x{s}' for s in entry.scales)}, not x{scale}")
        tile = body.get("tile")
        tile = None if tile in (None, "", "auto") else _int(tile, "tile")
        if tile is not None and tile < 0:
            raise ConfigError(f"tile must be >= 0 (0: never tile), not {tile}")
        precision = str(body.get("precision", "auto"))
        if precision not in ("fp32", "bf16", "fp16", "auto"):
            raise ConfigError(f"unknown precision {precision!r} (use fp32, bf16, fp16 or auto)")
        job = queue.submit(JobRequest(source, source.name, entry, scale, tile, precision, results_dir))
        return JSONResponse(job.to_json(queue.position(job)), status_code=202)

    @app.get("/api/jobs")
    def list_jobs() -> list[dict]:
        return [j.to_json(queue.position(j)) for j in queue.jobs()]

    def _job(job_id: str):  # noqa: ANN202
        job = queue.get(job_id)
        if job is None:
            raise UploadError(f"unknown job {job_id!r}", 404)
        return job

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict:
        job = _job(job_id)
        return job.to_json(queue.position(job))

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        job = _job(job_id)
        queue.cancel(job)
        return job.to_json(queue.position(job))

    @app.get("/api/jobs/{job_id}/result")
    def result(job_id: str) -> Response:
        job = _job(job_id)
        if job.result is None:
            return _error(409, f"job {job_id} has no result ({job.state})")
        return FileResponse(job.result, filename=job.result.name, content_disposition_type="attachment")

    @app.get("/api/jobs/{job_id}/preview")
    def preview(job_id: str) -> Response:
        job = _job(job_id)
        if job.result is None:
            return _error(409, f"job {job_id} has no result ({job.state})")
        return _viewable(job.result, session / "cache" / "previews" / f"job_{job.id}.png")

    # ---------------------------------------------------------------------------------------------------- compare

    @app.get("/api/compare")
    def compare() -> list[dict]:
        return [g.to_json() for g in groups]

    @app.get("/api/compare/image")
    def compare_image(group: str, image: str, condition: str) -> Response:
        return FileResponse(images.path(group, image, condition), media_type="image/png")

    # ------------------------------------------------------------------------------------------------------- rate

    @app.post("/api/rate/sessions")
    async def new_session(request: Request) -> Response:
        body = await _json(request)
        rater = " ".join(str(body.get("rater", "")).split())[:80]
        if not rater:
            raise ConfigError("give a rater name (it is stored with the ratings)")
        group = images.group(str(body.get("group") or (groups[0].key if groups else "")))
        count = body.get("images")
        chosen = group.images[: _int(count, "images")] if count else group.images
        conditions = [HR, BICUBIC, *(r.label for r in group.runs)]
        pairs = [BICUBIC, *(r.label for r in group.runs)] if body.get("pairs", True) else []
        session_id, trials = await run_in_threadpool(
            ratings.create_session, rater, group.key, lambda seed: plan_trials(chosen, conditions, pairs, seed))
        return JSONResponse({"session": session_id, "trials": [{"index": t.index, "kind": t.kind} for t in trials]},
                            status_code=201)

    def _trial(session_id: str, index: int):  # noqa: ANN202
        found = ratings.session(session_id)
        if found is None:
            raise UploadError(f"unknown rating session {session_id!r}", 404)
        key, trials = found
        if not 0 <= index < len(trials):
            raise UploadError(f"session {session_id} has no trial {index}", 404)
        return key, trials[index]

    @app.get("/api/rate/sessions/{session_id}")
    def session_state(session_id: str) -> dict:
        found = ratings.session(session_id)
        if found is None:
            raise UploadError(f"unknown rating session {session_id!r}", 404)
        done = ratings.answered(session_id)
        return {"session": session_id, "group": found[0],
                "trials": [{"index": t.index, "kind": t.kind, "answered": t.index in done} for t in found[1]]}

    @app.get("/api/rate/sessions/{session_id}/trials/{index}/{side}")
    def trial_image(session_id: str, index: int, side: str) -> Response:
        key, trial = _trial(session_id, index)
        if side not in ("a", "b") or (side == "b" and trial.cond_b is None):
            raise UploadError(f"trial {index} has no image {side!r}", 404)
        condition = trial.cond_a if side == "a" else trial.cond_b
        # No-store and an opaque URL: neither the address nor the cache tells the rater which model this is.
        return FileResponse(images.path(key, trial.image, condition), media_type="image/png",
                            headers={"Cache-Control": "no-store"})

    @app.post("/api/rate/sessions/{session_id}/trials/{index}")
    async def answer(session_id: str, index: int, request: Request) -> dict:
        body = await _json(request)
        _, trial = _trial(session_id, index)
        score = body.get("score")
        await run_in_threadpool(ratings.answer, session_id, trial,
                                score=_int(score, "score") if score is not None else None, choice=body.get("choice"))
        return {"ok": True}

    @app.get("/api/rate/results")
    def rate_results(group: str | None = None) -> dict:
        return {"mos": [_clean(r) for r in ratings.mos(group)],
                "preferences": [_clean(r) for r in ratings.preferences(group)]}

    @app.get("/api/rate/results.csv")
    def rate_results_csv(group: str | None = None) -> Response:
        return PlainTextResponse(ratings.results_csv(group), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="mos.csv"'})

    return app


def _page(name: str):  # noqa: ANN202
    def page() -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html")

    return page


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise ConfigError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ConfigError("the request body must be a JSON object")
    return body


def _int(value: object, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise ConfigError(f"{what} must be a whole number, not {value!r}") from None


def _clean(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN is not JSON


def _viewable(path: Path, png: Path) -> Response:
    """The file itself when browsers show its format, else an 8-bit PNG of it (made once)."""
    if path.suffix.lower() in _BROWSER_FORMATS:
        return FileResponse(path)
    if not png.is_file():
        from ..images import read_image, write_image

        try:
            write_image(png, read_image(path, max_pixels=0), bit_depth=8)
        except (ImageError, DatasetError) as exc:
            return _error(500, str(exc))
    return FileResponse(png, media_type="image/png")


def _remove_partial_outputs(folder: Path) -> None:
    """A server killed while writing leaves write_image's hidden temporary files; the results never saw them."""
    if not folder.is_dir():
        return
    for tmp in folder.rglob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    for job_dir in folder.iterdir():
        if job_dir.is_dir() and not any(job_dir.iterdir()):
            shutil.rmtree(job_dir, ignore_errors=True)
