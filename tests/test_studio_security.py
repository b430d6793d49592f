"""litesr studio under hostile or heavy input: bind address, upload limits, bad files, path traversal, 20 concurrent
uploads, cancellation, and a server killed mid-job (no half-written output, ratings database intact)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="litesr studio needs the studio extra (pip install 'litesr[studio]')")
httpx = pytest.importorskip("httpx", reason="the studio tests talk to the server with httpx")

from fastapi.testclient import TestClient  # noqa: E402
from studio_helpers import eval_run, live_server, make_app, picture, tiny_checkpoint, write_png  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    tiny_checkpoint(folder)
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _wait(client, job_id: str, timeout: float = 60.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


# ------------------------------------------------------------------------------------------------------- binding


def test_binds_loopback_by_default_and_warns_elsewhere(monkeypatch, tmp_path, capsys) -> None:
    import uvicorn

    from litesr.cli import build_parser, main

    assert build_parser().parse_args(["studio"]).host == "127.0.0.1"
    served = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: served.append((host, port)))
    assert main(["studio", "--session", str(tmp_path / "s1")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["studio", "--session", str(tmp_path / "s2"), "--host", "0.0.0.0", "--port", "9000"]) == 0
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0" in err and "no login" in err
    assert served == [("127.0.0.1", 8765), ("0.0.0.0", 9000)]


def test_foreign_host_and_cross_origin_writes_are_refused(tmp_path) -> None:
    client = TestClient(make_app(tmp_path / "s", allowed_hosts=None), base_url="http://127.0.0.1:8765")
    assert client.get("/api/info").status_code == 200
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host header
    assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    png = write_png(tmp_path / "a.png", picture(16, 16, 0)).read_bytes()
    refused = client.post("/api/uploads?name=a.png", content=png, headers={"origin": "http://evil.example"})
    assert refused.status_code == 403 and "may not change" in refused.json()["error"]
    assert _files(tmp_path / "s" / "uploads") == []


# ------------------------------------------------------------------------------------------------------- uploads


def test_upload_over_the_byte_limit_is_refused_and_nothing_kept(tmp_path) -> None:
    client = TestClient(make_app(tmp_path / "s", max_upload_bytes=20_000))
    big = write_png(tmp_path / "big.png", picture(200, 200, 1)).read_bytes()
    assert len(big) > 20_000
    declared = client.post("/api/uploads?name=big.png", content=big)
    assert declared.status_code == 413 and "over the upload limit" in declared.json()["error"]

    def chunked():  # no Content-Length: the limit is enforced while the body streams in
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    streamed = client.post("/api/uploads?name=big.png", content=chunked())
    assert streamed.status_code == 413 and "big.png: file is over the upload limit" in streamed.json()["error"]
    assert _files(tmp_path / "s" / "uploads") == []


def _png_header_only(width: int, height: int) -> bytes:
    """A decompression bomb: a valid PNG that claims width x height pixels in a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 64, 9)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_by_the_pixel_limit(tmp_path) -> None:
    client = TestClient(make_app(tmp_path / "s", max_pixels=1_000_000))
    bomb = _png_header_only(40_000, 40_000)
    assert len(bomb) < 10_000
    answer = client.post("/api/uploads?name=bomb.png", content=bomb)
    assert answer.status_code == 413
    message = answer.json()["error"]
    assert message.startswith("bomb.png: image is 40000x40000") and "over the limit of 1,000,000" in message
    assert str(tmp_path) not in message  # the client sees its own file name, not server paths
    assert _files(tmp_path / "s" / "uploads") == []


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("notes.png", b"just some text, not a picture\n" * 10, "not an image: it is a text file"),
    ("broken.png", None, "broken.png: "),  # a PNG cut in half
    ("random.jpg", bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)), "random.jpg: "),
    ("empty.png", b"", "empty.png: empty file"),
], ids=["text", "truncated-png", "random-bytes", "empty"])
def test_non_images_and_corrupt_files_get_a_clear_error(tmp_path, name, content, expected) -> None:
    client = TestClient(make_app(tmp_path / "s"))
    if content is None:
        content = write_png(tmp_path / "whole.png", picture(64, 64, 2)).read_bytes()[:700]
    answer = client.post(f"/api/uploads?name={name}", content=content)
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert expected in message and "\n" not in message and "Traceback" not in message
    assert _files(tmp_path / "s" / "uploads") == []


def test_multipart_form_uploads_work_too(tmp_path) -> None:
    client = TestClient(make_app(tmp_path / "s"))
    png = write_png(tmp_path / "a.png", picture(20, 12, 3)).read_bytes()
    answer = client.post("/api/uploads", files={"file": ("../form.png", png, "image/png")})
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == "form.png" and (answer.json()["width"], answer.json()["height"]) == (20, 12)
    assert client.get(f"/api/uploads/{answer.json()['id']}/image").content == png


TRAVERSAL_NAMES = ["../../escape.png", "..\\..\\escape.png", "/etc/passwd", "....//....//escape.png",
                   "%2e%2e%2fescape.png", "a/../../../escape.png", ".hidden.png", "..", "", "C:\\Windows\\x.png",
                   "ｅｓｃａｐｅ.png", "x" * 300 + ".png", "name with spaces & ;rm -rf.png", "pic.png.exe"]


def test_path_traversal_names_never_leave_the_session_folder(tmp_path) -> None:
    session = tmp_path / "s"
    client = TestClient(make_app(session))
    png = write_png(tmp_path / "src" / "p.png", picture(16, 16, 4)).read_bytes()
    outside_before = {p for p in tmp_path.rglob("*") if session not in p.parents and p != session}
    stored = []
    for name in TRAVERSAL_NAMES:
        answer = client.post("/api/uploads", params={"name": name}, content=png)
        assert answer.status_code == 201, (name, answer.text)
        upload = answer.json()
        path = next((session / "uploads" / upload["id"]).iterdir())
        assert path.resolve().parent == (session / "uploads" / upload["id"]).resolve()
        assert path.name == upload["name"] and "/" not in path.name and "\\" not in path.name
        assert not path.name.startswith(".") and len(path.name) <= 100
        assert path.suffix in (".png", ".jpg", ".tif", ".bmp", ".webp", ".gif", ".ppm", ".tga")
        stored.append(path)
    assert {p for p in tmp_path.rglob("*") if session not in p.parents and p != session} == outside_before
    assert not (tmp_path / "escape.png").exists()
    # Ids and run images are checked against what the server listed: nothing else reaches the file system.
    for bad in ["../../etc", "..%2f..%2fetc", "0" * 31 + "g"]:
        assert client.get(f"/api/uploads/{bad}/image").status_code in (404, 400)
    assert client.post("/api/jobs", json={"upload": "../x", "model": "zoo:bicubic"}).status_code == 404
    assert client.post("/api/jobs", json={"upload": stored[0].parent.name,
                                          "model": "file:../../etc/passwd"}).status_code == 400


def test_run_images_are_addressed_only_by_listed_names(tmp_path, models) -> None:
    runs = eval_run(tmp_path, [models / "tiny_imdn.safetensors"])
    client = TestClient(make_app(tmp_path / "s", runs=runs))
    group = client.get("/api/compare").json()[0]
    ok = client.get("/api/compare/image", params={"group": group["key"], "image": "img0", "condition": "HR"})
    assert ok.status_code == 200 and ok.content.startswith(b"\x89PNG")
    for params in [{"image": "../../../etc/passwd", "condition": "HR"}, {"image": "img0", "condition": "../x"},
                   {"image": "img0", "condition": "/etc/passwd"}]:
        answer = client.get("/api/compare/image", params={"group": group["key"], **params})
        assert answer.status_code == 400 and "no " in answer.json()["error"]


# ----------------------------------------------------------------------------------------------------------- load


def test_20_concurrent_uploads_all_complete_or_are_told_busy(tmp_path, models) -> None:
    from litesr import read_image, upscale_image
    from litesr.detect import load_model

    app = make_app(tmp_path / "s", models_dir=models, max_parallel_uploads=6)
    # Distinct sizes: a result's size says which input it came from.
    images = {f"u{i:02d}.png": write_png(tmp_path / "in" / f"u{i:02d}.png", picture(12 + i, 10 + (i % 5), seed=i))
              for i in range(20)}

    async def upload_all(base: str) -> list[tuple[str, httpx.Response]]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            async def one(name: str, path: Path) -> tuple[str, httpx.Response]:
                return name, await client.post("/api/uploads", params={"name": name}, content=path.read_bytes())
            return await asyncio.gather(*(one(n, p) for n, p in images.items()))

    with live_server(app) as base:
        answers = asyncio.run(upload_all(base))
        client = httpx.Client(base_url=base, timeout=60)
        accepted = {}
        for name, answer in answers:
            if answer.status_code == 503:
                assert answer.json()["error"].startswith("busy:") and answer.headers["retry-after"]
                continue
            assert answer.status_code == 201, answer.text
            assert answer.json()["name"] == name
            accepted[name] = answer.json()
        assert len(accepted) >= 6  # at least as many as may be received at once
        assert len(list((tmp_path / "s" / "uploads").iterdir())) == len(accepted)
        for name, upload in accepted.items():  # nothing mixed up: every id serves its own bytes
            assert hashlib.sha256(client.get(f"/api/uploads/{upload['id']}/image").content).digest() == \
                hashlib.sha256(images[name].read_bytes()).digest()
        jobs = {name: client.post("/api/jobs", json={"upload": u["id"], "model": "file:tiny_imdn.safetensors",
                                                     "scale": 2, "precision": "fp32"}).json()
                for name, u in accepted.items()}
        model = load_model(models / "tiny_imdn.safetensors")
        for name, job in jobs.items():
            done = _wait(client, job["id"])
            assert done["state"] == "done", done
            result = client.get(f"/api/jobs/{job['id']}/result")
            assert result.headers["content-disposition"].endswith(f'"{Path(name).stem}_x2.png"')
            got = np.asarray(Image.open(io.BytesIO(result.content)))
            want = upscale_image(model, read_image(images[name]))
            assert got.shape == (want.height, want.width, 3)
            np.testing.assert_allclose(got / 255.0, want.rgb, atol=0.51 / 255)
        client.close()


def test_jobs_can_be_cancelled_queued_or_running(tmp_path, models) -> None:
    client = TestClient(make_app(tmp_path / "s", models_dir=models))
    png = write_png(tmp_path / "big.png", picture(160, 160, 5)).read_bytes()
    upload = client.post("/api/uploads?name=big.png", content=png).json()
    request = {"upload": upload["id"], "model": "file:tiny_imdn.safetensors", "scale": 2, "tile": 8}
    running = client.post("/api/jobs", json=request).json()
    queued = client.post("/api/jobs", json=request).json()
    assert queued["state"] == "queued"
    assert client.post(f"/api/jobs/{queued['id']}/cancel").json()["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while (state := client.get(f"/api/jobs/{running['id']}").json())["done"] < 3:
        assert state["state"] in ("queued", "running") and time.monotonic() < deadline, state
        time.sleep(0.01)
    assert 0 < state["progress"] < 1
    client.post(f"/api/jobs/{running['id']}/cancel")
    assert _wait(client, running["id"])["state"] == "cancelled"
    assert _wait(client, queued["id"])["state"] == "cancelled"
    assert client.get(f"/api/jobs/{running['id']}/result").status_code == 409
    assert [p for p in _files(tmp_path / "s" / "results")] == []


# ------------------------------------------------------------------------------------------- killed mid-job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killing_the_server_mid_job_leaves_no_partial_output_and_the_ratings_intact(tmp_path, models) -> None:
    runs = eval_run(tmp_path, [models / "tiny_imdn.safetensors"])
    session = tmp_path / "s"
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "litesr.cli", "studio", "--session", str(session), "--models-dir", str(models),
         "--port", str(port), "--runs", *map(str, runs)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.get("/api/info")
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read().decode()
                time.sleep(0.2)
        made = client.post("/api/rate/sessions", json={"rater": "kill test", "pairs": False}).json()
        for trial in made["trials"][:3]:
            assert client.post(f"/api/rate/sessions/{made['session']}/trials/{trial['index']}",
                               json={"score": 4}).status_code == 200
        upload = client.post("/api/uploads?name=big.png",
                             content=write_png(tmp_path / "big.png", picture(200, 200, 6)).read_bytes()).json()
        job = client.post("/api/jobs", json={"upload": upload["id"], "model": "file:tiny_imdn.safetensors",
                                             "scale": 2, "tile": 8}).json()
        while client.get(f"/api/jobs/{job['id']}").json()["done"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        client.close()
    finally:
        if server.poll() is None:
            server.kill()
        server.stdout.close()
    assert _files(session / "results") == []  # killed while computing: nothing written, not even a temp file
    with sqlite3.connect(session / "ratings.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*), SUM(score) FROM ratings").fetchone() == (3, 12)
    restarted = TestClient(make_app(session, runs=runs))
    mos = restarted.get("/api/rate/results").json()["mos"]
    assert sum(r["n"] for r in mos) == 3 and all(r["mos"] == 4 for r in mos)
