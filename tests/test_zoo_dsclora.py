"""DSCLoRA, the NTIRE 2025 efficient-SR winner (team23 "DSCF"): its released network is SPAN's deploy form with 26
channels. Checked against the challenge repository's own code and checkpoint (Amazingren/NTIRE2025_ESR,
``models/team23_DSCF.py``, ``model_zoo/team23_DSCF.pth``), read from outside the repo; skipped when absent."""

from __future__ import annotations

import importlib
import io
import subprocess
from pathlib import Path

import pytest
import torch
from test_official_parity import MIRRORS, official_modules
from zoo_parity import parameter_count_on_meta, random_state

import litesr

REPO = "Amazingren/NTIRE2025_ESR"
FILES = {"models/team23_DSCF.py": "dscf_official.py"}


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The official constructor moves itself to CUDA and runs a probe forward: keep both on the CPU.
    monkeypatch.setattr(torch.nn.Module, "cuda", lambda self, *args, **kw: self)
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kw: self)
    with official_modules(tmp_path, REPO, FILES):
        yield importlib.import_module("dscf_official")


def _official_checkpoint(tmp_path: Path) -> Path:
    git_dir = MIRRORS / REPO.replace("/", "+") / "repo"
    done = subprocess.run(["git", "--git-dir", str(git_dir), "show", "HEAD:model_zoo/team23_DSCF.pth"],
                          capture_output=True)
    if done.returncode != 0 or not done.stdout.startswith(b"PK"):  # absent, or a Git LFS pointer
        pytest.skip(f"team23_DSCF.pth not found in {git_dir}")
    path = tmp_path / "team23_DSCF.pth"
    path.write_bytes(done.stdout)
    return path


def test_matches_official_on_random_weights(official) -> None:
    ours = litesr.create_model("dsclora", scale=4).eval()
    ours.load_state_dict(random_state(ours, seed=3, std=0.05))
    reference = official.DSCF(3, 3, feature_channels=26, upscale=4).eval()
    reference.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        # the official model keeps its mean as a plain attribute: cast it with the input
        want, got = reference.double()(x), ours.double()(x)
    assert float(want.abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_count_equals_official_and_challenge_table(official) -> None:
    """The challenge table (DSCF-SR results.txt) prints 0.131 M."""
    count = parameter_count_on_meta("dsclora", 4)
    assert count == 130_828
    assert round(count, -3) == litesr.registry.get_variant("dsclora").paper_params[4]
    reference = official.DSCF(3, 3, feature_channels=26, upscale=4)
    assert sum(p.numel() for p in reference.parameters()) == count


def test_released_checkpoint_loads_by_detection_and_matches_official(official, tmp_path: Path) -> None:
    path = _official_checkpoint(tmp_path)
    model = litesr.load_model(path).eval()
    described = litesr.describe(model)
    assert (described.arch, described.config["feature_channels"], described.config["deploy"]) == ("span", 26, True)
    reference = official.DSCF(3, 3, feature_channels=26, upscale=4).eval()
    state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    reference.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert want.shape == (1, 3, 96, 80)
    assert float((got - want).abs().max()) <= 1e-4
