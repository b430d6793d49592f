"""Files recognised by content: NumPy arrays and archives, HDF5, zip archives, safetensors under another suffix;
each with its own message, printed without terminal escape codes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoint_forms import same_outputs, zoo_model

import litesr
from litesr.checkpoint import save_safetensors
from litesr.checkpoint_formats import sniff
from litesr.cli import main
from litesr.errors import clean_message


def _error(capsys: pytest.CaptureFixture, path: Path) -> str:
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1
    return err


def test_npy_array_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "table.npy"
    np.save(path, np.zeros((5, 7), np.float32))
    err = _error(capsys, path)
    assert "NumPy array (shape (5, 7)" in err and "SR-LUT" in err and "not a model checkpoint" in err
    renamed = tmp_path / "table.pth"  # the same bytes under a torch suffix
    renamed.write_bytes(path.read_bytes())
    assert "NumPy array" in _error(capsys, renamed)


def test_npz_hdf5_and_zip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    npz = tmp_path / "luts.npz"
    np.savez(npz, lut=np.zeros(4, np.int8))
    assert "NumPy .npz archive of 1 arrays (lut)" in _error(capsys, npz)
    h5 = tmp_path / "weights.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    assert "HDF5" in _error(capsys, h5)
    other = tmp_path / "model.pth"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert "no data.pkl" in _error(capsys, other)


def test_kinds_by_content(tmp_path: Path) -> None:
    model = zoo_model("imdn")
    safetensors_as_pth = tmp_path / "weights.pth"
    save_safetensors(model.state_dict(), safetensors_as_pth)
    assert sniff(safetensors_as_pth) == "safetensors"
    assert same_outputs(model, litesr.load_model(safetensors_as_pth))
    zip_file, legacy = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save(model.state_dict(), zip_file)
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert (sniff(zip_file), sniff(legacy)) == ("torch-zip", "torch-legacy")
    assert same_outputs(model, litesr.load_model(legacy))


def test_unreadable_pickle_asks_for_allow_pickle_without_escape_codes(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "arrays.pth"
    torch.save({"weight": np.zeros(3)}, path)  # NumPy arrays: stand-ins give no tensors
    err = _error(capsys, path)
    assert "--allow-pickle" in err


def test_clean_message() -> None:
    assert clean_message("a \x1b[1mbold\x1b[0m\nnext\x07 line") == "a bold next line"
