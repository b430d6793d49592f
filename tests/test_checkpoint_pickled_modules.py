"""Pickled full modules read with stand-ins: the author's class exists only in the process that saved the file, and
nothing of it runs when litesr reads or converts the file (no --allow-pickle needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from checkpoint_forms import ZOO, rename_blocks, same_outputs, zoo_model

import litesr
from litesr.checkpoint import load_state_dict
from litesr.cli import main

AUTHOR_MODULE = '''
import pathlib
import torch
from torch import nn

class Net(nn.Module):
    """The author's class: the same tensors as the litesr model, under the author's own module names."""
    def __init__(self, state_dict):
        super().__init__()
        for key, value in state_dict.items():
            *path, leaf = key.split(".")
            module = self
            for part in path:
                if part not in module._modules:
                    module.add_module(part, nn.Module())
                module = module._modules[part]
            module.register_parameter(leaf, nn.Parameter(value))

    def __setstate__(self, state):  # would run on a normal unpickling: it must not run under litesr
        pathlib.Path(__file__).with_name("SETSTATE_RAN").write_text("x")
        super().__setstate__(state)
'''


CASES = {"vdsr": (False, False), "rfdn": (True, False), "rlfn": (False, True)}  # arch: (legacy format, renamed)


@pytest.fixture(scope="module")
def pickled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Each case saved with ``torch.save({"epoch": 50, "model": vdsr.Net(...)})`` in one subprocess, the only place
    the author's ``vdsr`` module can be imported."""
    root = tmp_path_factory.mktemp("pickled")
    author = root / "author"
    author.mkdir()
    (author / "vdsr.py").write_text(AUTHOR_MODULE)
    jobs, out = [], {}
    for arch, (legacy, renamed) in CASES.items():
        sd = zoo_model(arch).state_dict()
        sd = rename_blocks(sd) if renamed else sd
        torch.save(sd, root / f"{arch}_tensors.pt")
        out[arch] = (root / f"{arch}_model_epoch_50.pth", sd)
        jobs.append((str(root / f"{arch}_tensors.pt"), str(out[arch][0]), not legacy))
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(author)!r})
        import vdsr
        for tensors, target, zip_format in {jobs!r}:
            net = vdsr.Net(torch.load(tensors))
            torch.save({{"epoch": 50, "model": net}}, target, _use_new_zipfile_serialization=zip_format)
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    return out


@pytest.mark.parametrize("arch", sorted(CASES))
def test_pickled_module_converts_and_loads(pickled: dict, tmp_path: Path, arch: str,
                                           capsys: pytest.CaptureFixture) -> None:
    model = zoo_model(arch)
    path, sd = pickled[arch]
    with pytest.raises(ModuleNotFoundError):
        torch.load(path, weights_only=False)  # the author's class is not importable here
    converted = tmp_path / "model.safetensors"
    assert main(["convert", str(path), str(converted)]) == 0, capsys.readouterr().err
    assert not (path.parent / "author" / "SETSTATE_RAN").exists()
    tensors = load_state_dict(converted)
    assert set(tensors) == set(sd) and all(torch.equal(tensors[k], v) for k, v in sd.items())
    assert same_outputs(model, litesr.load_model(path))  # also directly, without converting
    if not CASES[arch][1]:  # renamed keys in a sorted (safetensors) file lose the block order (docs/checkpoints.md)
        assert same_outputs(model, litesr.load_model(converted))


def test_zoo_forms_cover_the_acceptance_archs() -> None:
    assert {"rfdn", "imdn", "rlfn", "vdsr", "edsr", "swinir"} <= set(ZOO)
