"""Name-independent detection: zoo models re-saved under other module names are recognised by structure, load with
the same outputs, and ``litesr inspect`` shows the key mapping; two architectures that fit are refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from checkpoint_forms import ZOO, rename_blocks, same_outputs, zoo_model

import litesr
from litesr import detect_structural, registry
from litesr.cli import main
from litesr.detect import detect_architecture


@pytest.mark.parametrize("arch", sorted(ZOO))
def test_renamed_blocks_load_with_identical_outputs(arch: str, tmp_path: Path) -> None:
    model = zoo_model(arch)
    renamed = rename_blocks(model.state_dict(), seed=len(arch))
    assert not detect_architecture(renamed), "the renaming must defeat name-based detection"
    path = tmp_path / f"{arch}_renamed.pth"
    torch.save(renamed, path)  # torch files keep the module order
    loaded = litesr.load_model(path)
    assert type(loaded) is type(model)
    assert same_outputs(model, loaded)


def test_sorted_file_without_order_is_refused() -> None:
    """Blocks renamed to unrelated words in a sorted file: which block comes first cannot be known, so no match."""
    model = zoo_model("rfdn")
    names = iter(["zeta", "alpha", "mu"])
    table = {"B1": next(names), "B2": next(names), "B3": next(names)}
    sd = {".".join([table.get(p, p) for p in k.split(".")]): v for k, v in model.state_dict().items()}
    assert not detect_structural.structural_matches(dict(sorted(sd.items())))
    assert detect_structural.structural_matches(sd)  # in module order it is readable


def test_inspect_shows_the_mapping(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = zoo_model("rfdn")
    path = tmp_path / "renamed.pth"
    torch.save(rename_blocks(model.state_dict()), path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rfdn(" in out and "num_modules=3" in out
    assert "structure" in out
    assert "-> B1" in out and "-> fea_conv" in out
    assert main(["inspect", "--all", str(path)]) == 0
    assert "-> B1.c1_r.weight" in capsys.readouterr().out


def test_two_fitting_architectures_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second registered architecture of the same structure: loading refuses and names both."""
    twin = dataclasses.replace(registry.get_arch("rfdn"), name="rfdn_twin")
    monkeypatch.setitem(registry._ARCHS._entries, "rfdn_twin", twin)
    monkeypatch.setitem(registry._VARIANTS._entries, "rfdn_twin", registry.Variant("rfdn_twin", "rfdn_twin", {}, ""))
    renamed = rename_blocks(zoo_model("rfdn").state_dict())
    with pytest.raises(litesr.CheckpointError, match="fits several architectures") as info:
        litesr.load_model(renamed)
    assert "rfdn(" in str(info.value) and "rfdn_twin(" in str(info.value)
