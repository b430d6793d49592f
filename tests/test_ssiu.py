"""SSIU (Ni et al., TIP 2025): parameter counts, official state-dict names, checkpoint round trips, padding/cropping."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import litesr
from litesr.detect import detect_architecture
from litesr.errors import ConfigError
from litesr.registry import count_parameters, create_model, get_variant

TINY = {"n_feats": 16, "n_blocks": 3}


def _official_x2_keys() -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) of the official SSUFSRNet at x2, n_feats 64, n_blocks 9, in its state-dict order.

    Written from eezkni/SSIU models/SSUFSR_network.py: SSRM(num_heads=4, bs=8, halo_size=1, sr=2, scale=1, ratio=1).
    """
    gate = [
        ("project_in1.weight", (64, 64, 1, 1)), ("project_in1.bias", (64,)),
        ("project_in2.0.weight", (64, 64, 1, 1)), ("project_in2.0.bias", (64,)),
        ("project_in2.1.weight", (64, 1, 3, 3)), ("project_in2.1.bias", (64,)),
        ("project_in2.2.weight", (64, 64, 1, 1)), ("project_in2.2.bias", (64,)),
        ("project_out.weight", (64, 64, 1, 1)), ("project_out.bias", (64,)),
    ]
    attention = [
        ("rel_h", (1, 10, 1, 8)), ("rel_w", (1, 1, 10, 8)),
        ("LocalProp.0.weight", (64, 1, 3, 3)), ("LocalProp.0.bias", (64,)),
        ("qkv_conv.weight", (192, 64, 1, 1)),
    ]
    step = [("norm.body.weight", (64,)), ("norm.body.bias", (64,))]
    for name in ("s1", "s2"):
        step += [(f"{name}.{k}", s) for k, s in gate]
    step += [(f"s3.{k}", s) for k, s in attention]
    for name in ("s4", "ffn"):
        step += [(f"{name}.{k}", s) for k, s in gate]
    keys = [("head.weight", (64, 3, 3, 3)), ("head.bias", (64,))]
    for i in range(9):
        keys += [(f"body.{i}.{k}", s) for k, s in step]
    for name in ("fc_a", "fc_b", "fc_c", "fuse"):
        keys += [(f"moe.{name}.weight", (64, 64, 1, 1)), (f"moe.{name}.bias", (64,))]
    keys += [("tail.0.weight", (256, 64, 1, 1)), ("tail.0.bias", (256,)),
             ("tail.3.weight", (3, 64, 3, 3)), ("tail.3.bias", (3,))]
    return keys


def _meta_model(scale: int, **config) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model("ssiu", scale=scale, **config)


@pytest.mark.parametrize("scale,expected", [(2, 777_827), (3, 798_627), (4, 794_467)])
def test_parameter_counts_match_official(scale: int, expected: int) -> None:
    assert count_parameters(_meta_model(scale)) == expected
    assert get_variant("ssiu").paper_params[scale] == expected


def test_state_dict_names_and_shapes_are_the_official_ones() -> None:
    own = [(k, tuple(v.shape)) for k, v in _meta_model(2).state_dict().items()]
    assert own == _official_x2_keys()


@pytest.mark.parametrize("scale,tail", [
    (3, {"tail.0.weight": (576, 64, 1, 1), "tail.3.weight": (3, 64, 3, 3)}),
    (4, {"tail.0.weight": (256, 64, 1, 1), "tail.3.weight": (256, 64, 1, 1), "tail.6.weight": (3, 64, 3, 3)}),
])
def test_tail_layout_per_scale(scale: int, tail: dict[str, tuple[int, ...]]) -> None:
    own = {k: tuple(v.shape) for k, v in _meta_model(scale).state_dict().items() if k.startswith("tail.")}
    assert {k: s for k, s in own.items() if k.endswith("weight")} == tail


def test_official_key_list_loads_strict_and_is_detected() -> None:
    torch.manual_seed(0)
    state_dict = {k: torch.randn(shape) for k, shape in _official_x2_keys()}
    model = litesr.load_model(state_dict)
    assert model.litesr_arch == "ssiu"
    assert model.litesr_config == {"scale": 2, "n_feats": 64, "n_blocks": 9, "num_heads": 4, "block_size": 8,
                                   "halo_size": 1}
    assert torch.equal(model.state_dict()["body.8.s3.rel_w"], state_dict["body.8.s3.rel_w"])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_train_py_checkpoint_round_trip(tmp_path, scale: int) -> None:
    """A file laid out as the official train.py saves it: DataParallel ``module.`` keys inside ``model_state_dict``."""
    torch.manual_seed(scale)
    model = create_model("ssiu", scale=scale, n_feats=16, n_blocks=4, num_heads=2).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 290.0, eta_min=1e-6)
    path = tmp_path / f"model_x{scale}_290.pt"
    torch.save({"epoch": 290, "model_state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
                "optimizer_state_dict": optimizer.state_dict(), "scheduler_state_dict": scheduler.state_dict(),
                "stat_dict": {"epochs": 290, "losses": [0.01]}}, path)
    loaded = litesr.load_model(path)
    assert loaded.litesr_config == {"scale": scale, "n_feats": 16, "n_blocks": 4, "num_heads": 2, "block_size": 8,
                                    "halo_size": 1}
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_detect_ignores_other_architectures() -> None:
    imdn = create_model("imdn", scale=2, nf=16, num_modules=2)
    assert all(m.arch != "ssiu" for m in detect_architecture(imdn.state_dict()))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_any_input_size(scale: int) -> None:
    torch.manual_seed(0)
    model = create_model("ssiu", scale=scale, **TINY).eval()
    assert model.pad_multiple == 1 and model.input_range == 1.0
    with torch.no_grad():
        for h, w in [(1, 1), (7, 13), (33, 17), (64, 64)]:
            out = model(torch.rand(1, 3, h, w))
            assert out.shape == (1, 3, h * scale, w * scale)
            assert torch.isfinite(out).all()


def test_padding_is_reflect_and_leaves_the_image_in_place() -> None:
    model = create_model("ssiu", scale=2, **TINY)
    x = torch.rand(1, 3, 32, 48)
    assert torch.equal(model.check_image_size(x), x)  # already a multiple of 16: untouched
    y = torch.rand(1, 3, 20, 27)
    padded = model.check_image_size(y)
    assert padded.shape == (1, 3, 32, 32)
    assert torch.equal(padded[..., :20, :27], y)
    assert torch.equal(padded[..., 20, :27], y[..., 18, :])  # reflect: row h mirrors row h - 2
    assert torch.equal(padded[..., :20, 27], y[..., :, 25])


def test_forward_crops_the_output_of_the_padded_input() -> None:
    torch.manual_seed(1)
    model = create_model("ssiu", scale=3, **TINY).eval()
    y = torch.rand(1, 3, 20, 27)
    with torch.no_grad():
        out = model(y)
        full = model(F.pad(y, (0, 5, 0, 12), mode="reflect"))
    assert torch.equal(out, full[..., :60, :81])


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="n_blocks >= 3"):
        create_model("ssiu", scale=2, n_feats=16, n_blocks=2)
    with pytest.raises(ConfigError, match="heads"):
        create_model("ssiu", scale=2, n_feats=20, n_blocks=3, num_heads=4)
