"""The study notes' training command, without --model, trains rdesa and says so in its first line."""

from __future__ import annotations

from pathlib import Path

import pytest

from litesr.cli import main
from litesr.data.train import make_synthetic_set
from litesr.train import read_state

NOTES_COMMAND = ["--scale", "2", "--epochs", "100", "--batch_size", "16", "--patch_size", "128"]


def first_line(text: str) -> str:
    return text.splitlines()[0]


def test_flag_form_without_model_trains_rdesa(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_synthetic_set(tmp_path / "hr", count=2, size=32)
    make_synthetic_set(tmp_path / "val", count=1, size=16, seed=3)
    rc = main(["train", "--train_dir", str(tmp_path / "hr"), "--val_dir", str(tmp_path / "val"), *NOTES_COMMAND,
               "train.epochs=null", "train.iterations=1", "train.batch_size=2", "datasets.train.patch_size=32",
               "datasets.train.workers=0", "logger.tensorboard=false", "--output", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "no --model given: training rdesa" in first_line(out), out
    state = read_state(tmp_path / "runs" / "rdesa_x2")
    assert state["config"]["model"]["name"] == "rdesa" and state["iteration"] == 1


def test_flag_form_without_train_dir_says_what_is_missing(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", *NOTES_COMMAND]) != 0
    assert "--train_dir" in capsys.readouterr().err


@pytest.mark.slow
def test_notes_command_verbatim_on_t91(tmp_path: Path, datasets_dir: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes' command with ../shared paths (T91/HR, Set5/HR), cut to two iterations by overrides."""
    monkeypatch.chdir(tmp_path)
    train, val = datasets_dir / "T91" / "HR", datasets_dir / "Set5" / "HR"
    rc = main(["train", "--train_dir", str(train), "--val_dir", str(val), *NOTES_COMMAND,
               "train.epochs=null", "train.iterations=2", "datasets.train.workers=0"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "no --model given: training rdesa" in first_line(out)
    assert "training rdesa x2" in out and "val HR @ 2" in out
    assert read_state(tmp_path / "runs" / "rdesa_x2")["iteration"] == 2
