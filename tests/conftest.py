"""Shared fixtures: where ../shared is (tests skip with a reason when it is absent) and spandrel as a reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LITESR_SHARED", REPO.parent / "shared"))
DATASETS = SHARED / "datasets"
WEIGHTS = SHARED / "weights"

# One thread for the whole suite: tests run small tensors where OpenMP synchronisation costs more than it gains, and
# on a shared 2-core machine two threads per process made them up to 8x slower in wall time.
torch.set_num_threads(1)


def require(path: Path) -> Path:
    """Skip the calling test (with the path in the reason) when a shared resource is absent."""
    if not path.exists():
        pytest.skip(
            f"{path} not found (tests that need ../shared skip without it; set LITESR_SHARED to point elsewhere)"
        )
    return path


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    return require(DATASETS)


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    return require(WEIGHTS)


def _stub_torchvision() -> None:
    from torchvision_stub import stub_torchvision

    stub_torchvision()


@pytest.fixture(scope="session")
def spandrel():
    """The spandrel package as a reference implementation; skips when it is not installed."""
    _stub_torchvision()
    try:
        import spandrel as sp
    except ImportError as exc:
        pytest.skip(f"spandrel not installed ({exc}); `pip install --no-deps spandrel==0.4.2` enables this test")
    return sp
