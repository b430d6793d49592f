"""HiT-SIR, HiT-SRF and HiT-SNG: the same outputs as the official code (XiangZ-0/HiT-SR, read from outside the repo)
on shared random weights in float64 at sizes that need the blocks' repeated reflect padding, every reconstruction
head, the paper's parameter counts (equal to the official code's), detection of every variant."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from test_official_parity import official_modules
from torch import nn
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "XiangZ-0/HiT-SR"
KINDS = {"sir": "HiT_SIR", "srf": "HiT_SRF", "sng": "HiT_SNG"}
SMALL = dict(embed_dim=24, depths=(3, 2), num_heads=(2, 3), hier_win_ratios=(0.5, 1, 2))  # windows 4, 8, 16


def _stub(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _tv_pad(x: torch.Tensor, padding: list[int]) -> torch.Tensor:
    """torchvision's ``functional.pad`` with [left, top, right, bottom] and zeros (what HiT-SNG calls)."""
    left, top, right, bottom = padding
    return F.pad(x, (left, right, top, bottom))


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory):
    """The three official modules, with the helpers they import but do not need stubbed (timm, huggingface_hub)."""
    def to_2tuple(v: object) -> tuple:
        return tuple(v) if isinstance(v, (list, tuple)) else (v, v)

    def check(condition: bool, message: str) -> None:
        assert condition, message

    stubs = {
        "timm": _stub("timm"), "timm.models": _stub("timm.models"),
        "timm.models.layers": _stub("timm.models.layers", DropPath=lambda p=0.0: nn.Identity(), to_2tuple=to_2tuple,
                                    trunc_normal_=nn.init.trunc_normal_, _assert=check),
        "timm.models.fx_features": _stub("timm.models.fx_features", register_notrace_function=lambda f: f),
        "huggingface_hub": _stub("huggingface_hub", PyTorchModelHubMixin=type("PyTorchModelHubMixin", (), {})),
        "torchvision.transforms": _stub("torchvision.transforms"),
        "torchvision.transforms.functional": _stub("torchvision.transforms.functional", pad=_tv_pad),
    }
    files = {f"basicsr/archs/hit_{k}_arch.py": f"hit_{k}_official.py" for k in KINDS}
    with pytest.MonkeyPatch.context() as mp, official_modules(tmp_path_factory.mktemp("hit"), REPO, files):
        for name, module in stubs.items():
            mp.setitem(sys.modules, name, module)
        modules = {k: importlib.import_module(f"hit_{k}_official") for k in KINDS}
        for module in modules.values():
            # The official position MLP casts its input to float32; cast to the weights' dtype so float64 runs.
            forward = module.DynamicPosBias.forward
            mp.setattr(module.DynamicPosBias, "forward",
                       lambda self, b, forward=forward: forward(self, b.to(self.pos_proj.weight.dtype)))
        yield modules


# (5, 9) needs the 16-window blocks to reflect twice; the official HiT-SRF does that, HiT-SIR (one reflection)
# and HiT-SNG (32-pixel padding) cannot, so they get the sizes their code runs at.
CASES = [("sir", 2, "pixelshuffledirect", (13, 19)), ("srf", 2, "pixelshuffledirect", (13, 19)),
         ("sng", 2, "pixelshuffledirect", (13, 19)), ("srf", 3, "pixelshuffle", (5, 9)),
         ("sng", 3, "pixelshuffle", (9, 11)), ("sir", 4, "nearest+conv", (16, 16))]


@pytest.mark.parametrize(("kind", "scale", "upsampler", "size"), CASES, ids=lambda v: str(v))
def test_matches_official(official, kind: str, scale: int, upsampler: str, size: tuple[int, int]) -> None:
    ours = litesr.create_model(f"hit_{kind}", scale=scale, upsampler=upsampler, **SMALL).eval()
    ours.load_state_dict(random_state(ours, seed=scale, std=0.1))
    reference = getattr(official[kind], KINDS[kind])(
        upscale=scale, embed_dim=24, depths=[3, 2], num_heads=[2, 3], base_win_size=[8, 8], mlp_ratio=2,
        hier_win_ratios=[0.5, 1, 2], upsampler=upsampler, img_range=1.0).eval()
    reference.load_state_dict(ours.state_dict())  # strict: the same names and shapes
    assert sum(p.numel() for p in reference.parameters()) == sum(p.numel() for p in ours.parameters())
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert got.shape == want.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float(want.abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5
    matches = detect_architecture(ours.state_dict())
    assert [m.arch for m in matches] == [f"hit_{kind}"]


PAPER = {"hit_sir": [772_064, 780_179, 791_540], "hit_srf": [846_944, 855_059, 866_420],
         "hit_sng": [1_012_584, 1_020_699, 1_032_060]}


def test_parameter_counts() -> None:
    """Paper Table 2: 772K / 780K / 792K, 847K / 855K / 866K, 1013K / 1021K / 1032K."""
    for name, want in PAPER.items():
        counts = [parameter_count_on_meta(name, s) for s in (2, 3, 4)]
        assert counts == want, name
        assert {s: round(n, -3) for s, n in zip((2, 3, 4), counts)} == litesr.registry.get_variant(name).paper_params


@pytest.mark.slow
def test_parameter_counts_of_the_official_code(official) -> None:
    """The released configuration built by the official code (on CPU: its constructor cannot run on meta)."""
    for name, want in PAPER.items():
        reference = getattr(official[name[4:]], KINDS[name[4:]])(upscale=4, base_win_size=[8, 8])
        assert sum(p.numel() for p in reference.parameters()) == want[2], name


@pytest.mark.parametrize("arch", ["hit_sir", "hit_srf", "hit_sng"])
def test_variants_detect_as_themselves(arch: str) -> None:
    assert arch in check_variants_detect_as_themselves(arch)


def test_any_size_beyond_what_the_official_padding_allows() -> None:
    model = litesr.create_model("hit_sng", scale=2, **SMALL).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 3, 5)).shape == (1, 3, 6, 10)


def test_sng_windows_are_read_off_the_unigram_convs() -> None:
    model = litesr.create_model("hit_sng", scale=2, embed_dim=16, depths=(2,), num_heads=(2,), base_win_size=4,
                                hier_win_ratios=(1, 2))
    (match,) = detect_architecture(model.state_dict())
    assert (match.config["base_win_size"], match.config["hier_win_ratios"]) == (4, (1.0, 2.0))
