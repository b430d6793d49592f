"""Shared set-up of the studio tests: a tiny checkpoint, test images, evaluation runs and a live server."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi", reason="litesr studio needs the studio extra (pip install 'litesr[studio]')")
uvicorn = pytest.importorskip("uvicorn", reason="litesr studio needs the studio extra (pip install 'litesr[studio]')")

from litesr.studio import StudioConfig, create_app  # noqa: E402


def tiny_checkpoint(folder: Path, arch: str = "imdn", seed: int = 0, name: str | None = None) -> Path:
    """A few-thousand-parameter x2 model with random weights, saved as safetensors (detected from its shapes)."""
    import torch

    from litesr import create_model, save_safetensors
    from litesr.registry import get_arch

    torch.manual_seed(seed)
    model = create_model(arch, scale=2, **get_arch(arch).tiny)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"tiny_{arch}.safetensors")
    save_safetensors(model.state_dict(), path)
    return path


def picture(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth colour picture with some texture (uint8 H x W x 3), different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [np.sin(x / (3 + 2 * c + seed % 3)) * np.cos(y / (4 + c)) for c in range(3)]
    noise = rng.normal(0, 0.08, (height, width, 3))
    pixels = (np.stack(planes, axis=2) * 0.4 + 0.5 + noise).clip(0, 1)
    return np.round(pixels * 255).astype(np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def eval_run(tmp: Path, weights: list[Path], images: int = 2) -> list[Path]:
    """A two-image test set and one `litesr eval --save-images` folder per checkpoint."""
    from litesr.cli import main

    dataset = tmp / "TinySet" / "HR"
    for i in range(images):
        write_png(dataset / f"img{i}.png", picture(48 + 8 * i, 40, seed=10 + i))
    runs = []
    for w in weights:
        out = tmp / "runs" / w.stem
        rc = main(["eval", "--weights", str(w), "--dataset", str(dataset.parent), "--save-images", str(out),
                   "--no-progress"])
        assert rc == 0
        runs.append(out)
    return runs


def make_app(session: Path, **options):  # noqa: ANN003, ANN201 - StudioConfig's fields
    options.setdefault("allowed_hosts", ["testserver", "127.0.0.1", "localhost"])
    return create_app(StudioConfig(session_dir=session, **options))


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:  # noqa: ANN001
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
