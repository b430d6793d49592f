"""Zoo: SwinIR, Swin2SR, DITN (DITN_Real and the LayerNorm form) and IPT.

Parity with spandrel 0.4.2 (the official code, reformatted) on random weights at sizes that are not window
multiples; the published parameter counts; detection round trips; any input size; the released DITN_Real weights.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from litesr.archs.blocks import relative_position_index, shifted_window_mask, window_partition
from litesr.checkpoint import load_into, load_state_dict
from litesr.detect import detect_architecture, load_model
from litesr.errors import ConfigError
from litesr.registry import count_parameters, create_model, get_arch


def _random_params(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """The model's state dict with every trained parameter redrawn (buffers such as index tables kept)."""
    gen = torch.Generator().manual_seed(seed)
    params = {k for k, p in model.named_parameters() if p.requires_grad}  # frozen mean shifts stay as they are
    return {k: torch.randn(v.shape, generator=gen) * std if k in params else v.clone()
            for k, v in model.state_dict().items()}


def _compare(reference: torch.nn.Module, arch: str, config: dict, x: torch.Tensor, run_ref=None) -> float:
    """Load the reference's randomised weights (official key layout) into litesr's model, strictly; max |diff|."""
    reference.eval()
    sd = _random_params(reference)
    reference.load_state_dict(sd)
    ours = create_model(arch, **config).eval()
    load_into(ours, sd)
    with torch.no_grad():
        expected = run_ref(reference, x) if run_ref else reference(x)
        return (expected - ours(x)).abs().max().item()


SWIN_CASES = [
    dict(scale=2, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, img_size=16,
         upsampler="pixelshuffledirect"),
    dict(scale=3, embed_dim=12, depths=(2, 3), num_heads=(2, 2), window_size=4, img_size=16, upsampler="pixelshuffle",
         resi_connection="3conv"),
    dict(scale=4, embed_dim=8, depths=(3,), num_heads=(2,), window_size=4, img_size=8, upsampler="nearest+conv",
         mlp_ratio=4.0),
    dict(scale=1, in_chans=1, embed_dim=8, depths=(2,), num_heads=(2,), window_size=7, img_size=14, upsampler="",
         img_range=255.0),
]


def _spandrel_swin_kwargs(cfg: dict) -> dict:
    return dict(img_size=cfg["img_size"], in_chans=cfg.get("in_chans", 3), embed_dim=cfg["embed_dim"],
                depths=list(cfg["depths"]), num_heads=list(cfg["num_heads"]), window_size=cfg["window_size"],
                mlp_ratio=cfg.get("mlp_ratio", 2.0), upscale=cfg["scale"], img_range=cfg.get("img_range", 1.0),
                upsampler=cfg["upsampler"], resi_connection=cfg.get("resi_connection", "1conv"))


@pytest.mark.parametrize("cfg", SWIN_CASES, ids=lambda c: c["upsampler"] or "restore")
def test_swinir_matches_spandrel(spandrel, cfg):
    from spandrel.architectures.SwinIR import SwinIR as Reference

    x = torch.rand(1, cfg.get("in_chans", 3), 13, 19)
    assert _compare(Reference(**_spandrel_swin_kwargs(cfg)), "swinir", cfg, x) <= 1e-5


@pytest.mark.parametrize("cfg", SWIN_CASES[:3] + [
    dict(scale=4, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8, upsampler="pixelshuffle_aux"),
    dict(scale=2, embed_dim=8, depths=(2, 1), num_heads=(2, 2), window_size=4, img_size=8,
         upsampler="pixelshuffle_hf"),
], ids=lambda c: c["upsampler"])
def test_swin2sr_matches_spandrel(spandrel, cfg):
    from spandrel.architectures.Swin2SR import Swin2SR as Reference

    def run(ref, x):  # the 'pixelshuffle_hf' forward returns (base, sr, high-frequency)
        out = ref(x)
        return out[1] if isinstance(out, tuple) else out

    x = torch.rand(1, 3, 13, 19)
    assert _compare(Reference(**_spandrel_swin_kwargs(cfg)), "swin2sr", cfg, x, run) <= 1e-5


@pytest.mark.parametrize("cfg", [
    dict(scale=2, dim=8, itl_blocks=1, sal_blocks=2, patch_size=4),
    dict(scale=3, dim=12, itl_blocks=2, sal_blocks=1, ufone_blocks=2, bias=True, ffn_expansion_factor=1.5),
])
def test_ditn_real_matches_spandrel(spandrel, cfg):
    from spandrel.architectures.DITN import DITN as Reference

    ref = Reference(dim=cfg["dim"], ITL_blocks=cfg["itl_blocks"], SAL_blocks=cfg["sal_blocks"],
                    UFONE_blocks=cfg.get("ufone_blocks", 1), ffn_expansion_factor=cfg.get("ffn_expansion_factor", 2),
                    bias=cfg.get("bias", False), patch_size=cfg.get("patch_size", 8), upscale=cfg["scale"])
    assert _compare(ref, "ditn_real", cfg, torch.rand(1, 3, 13, 19)) <= 1e-5


IPT_TASKS = ("sr_x2", "sr_x3", "sr_x4", "denoise30")
IPT_TINY = dict(tasks=IPT_TASKS, n_feats=4, patch_size=8, patch_dim=2, num_heads=2, num_layers=2)


@pytest.mark.parametrize("task", IPT_TASKS)
def test_ipt_matches_spandrel_forward_chop(spandrel, task):
    """The official tiled inference (forward_chop, in spandrel's copy) at a size that is not a tile multiple."""
    from spandrel.architectures.IPT import IPT as Reference
    from spandrel.architectures.IPT.__arch.model import Model

    index = IPT_TASKS.index(task)
    ref = Reference(patch_size=8, patch_dim=2, n_feats=4, rgb_range=255, scale=[2, 3, 4, 1], num_heads=2,
                    num_layers=2, num_queries=len(IPT_TASKS))
    ours = create_model("ipt", **IPT_TINY).eval()
    sd = _random_params(ref.eval())
    ref.load_state_dict(sd)
    load_into(ours, sd)
    ours.set_task(task)
    x = torch.rand(1, 3, 13, 19) * 255
    with torch.no_grad():
        diff = (Model(ref).forward(x, index) - ours(x)) / 255
    assert diff.abs().max().item() <= 1e-5


# -- parameter counts ------------------------------------------------------------------------------------------------


def _meta_model(name: str, **config) -> torch.nn.Module:
    with torch.device("meta"):
        return create_model(name, **config)


def _bias_tables(model: torch.nn.Module) -> int:
    return sum(p.numel() for k, p in model.named_parameters() if k.endswith("relative_position_bias_table"))


@pytest.mark.parametrize(("scale", "published_k"), [(2, 878), (3, 886), (4, 897)])
def test_swinir_light_parameter_count(scale, published_k):
    """SwinIR Table 3 counts without the 24 relative-position-bias tables (published_numbers.md section 8)."""
    model = _meta_model("swinir_light", scale=scale)
    assert _bias_tables(model) == 24 * 225 * 6
    assert round((count_parameters(model) - _bias_tables(model)) / 1000) == published_k
    if scale == 2:
        assert count_parameters(model) == 910_152


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_swinir_classical_parameter_count(scale):
    """SwinIR Table 2 prints 11.8M for the classical model (embed 180, 6x6)."""
    assert count_parameters(_meta_model("swinir_classical", scale=scale)) / 1e6 == pytest.approx(11.8, abs=0.15)


def test_ipt_paper_configuration_parameter_count():
    """Measured, pinned: 6 task heads/tails + shared 12+12-layer Transformer; one-task x2 model 115.46M."""
    assert count_parameters(_meta_model("ipt")) == 118_892_394
    assert count_parameters(_meta_model("ipt", tasks=("sr_x2",))) == 115_460_443


# -- detection round trips -------------------------------------------------------------------------------------------

ROUND_TRIPS = [
    ("swinir", dict(scale=2, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, img_size=16)),
    ("swinir", dict(scale=3, embed_dim=8, depths=(2, 1, 2), num_heads=(2, 2, 4), window_size=4, img_size=None,
                    upsampler="pixelshuffle", resi_connection="3conv", mlp_ratio=4.0, qkv_bias=False)),
    ("swinir", dict(scale=8, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=12,
                    upsampler="nearest+conv", patch_norm=False)),
    ("swinir", dict(scale=1, in_chans=1, embed_dim=8, depths=(2,), num_heads=(2,), window_size=7, img_size=14,
                    upsampler="", img_range=255.0)),
    ("swin2sr", dict(scale=2, embed_dim=12, depths=(2, 2), num_heads=(2, 3), window_size=4, img_size=16)),
    ("swin2sr", dict(scale=4, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8,
                     upsampler="pixelshuffle_aux")),
    ("swin2sr", dict(scale=3, embed_dim=8, depths=(1, 2), num_heads=(2, 2), window_size=4, img_size=None,
                     upsampler="pixelshuffle_hf", qkv_bias=False)),
    ("ditn_real", dict(scale=4, dim=8, itl_blocks=1, sal_blocks=2, ufone_blocks=2)),
    ("ditn", dict(scale=2, dim=8, itl_blocks=2, sal_blocks=1, bias=True, ffn_expansion_factor=1.5)),
    ("ipt", dict(scale=2, tasks=IPT_TASKS, n_feats=4, patch_size=8, patch_dim=2, num_heads=8, num_layers=2)),
    ("ipt", dict(scale=1, tasks=("denoise30",), n_feats=4, patch_size=12, patch_dim=3, num_heads=12, num_layers=1,
                 rgb_range=1.0, no_norm=True)),
]


@pytest.mark.parametrize(("arch", "config"), ROUND_TRIPS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(ROUND_TRIPS)])
def test_detection_round_trip(arch, config):
    model = create_model(arch, **config).eval()
    sd = _random_params(model, seed=1)
    loaded = load_model(sd)  # detection: refuses a state dict that several architectures fit
    assert loaded.litesr_arch == arch
    for key, value in config.items():
        assert loaded.litesr_config[key] == value, key
    load_into(model, sd)
    x = torch.rand(1, 3 if config.get("in_chans", 3) == 3 else 1, 9, 11) * getattr(model, "input_range", 1.0)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_swinir_official_buffers_follow_img_size():
    """Official files carry attn_mask sized for the training patch: (48/8)^2 windows for img_size 48."""
    sd = create_model("swinir", scale=2, embed_dim=12, depths=(2,), num_heads=(2,), img_size=48).state_dict()
    assert sd["layers.0.residual_group.blocks.1.attn_mask"].shape == (36, 64, 64)
    assert "layers.0.residual_group.blocks.0.attn_mask" not in sd
    assert sd["layers.0.residual_group.blocks.0.attn.relative_position_index"].shape == (64, 64)
    compact = create_model("swinir", scale=2, embed_dim=12, depths=(2,), num_heads=(2,), img_size=None).state_dict()
    assert not any(k.endswith("attn_mask") for k in compact)


def test_derived_buffers_are_recomputed_on_load():
    """A checkpoint with corrupted index tables / masks (e.g. cast to fp16 and back) loads the recomputed values."""
    cfg = dict(scale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8)
    model = create_model("swin2sr", **cfg).eval()
    sd = _random_params(model)
    load_into(model, sd)
    broken = dict(sd)
    for k in broken:
        if k.endswith(("relative_position_index", "attn_mask", "relative_coords_table")):
            broken[k] = torch.zeros_like(broken[k])
    other = create_model("swin2sr", **cfg).eval()
    load_into(other, broken)
    x = torch.rand(1, 3, 6, 10)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))


def test_shift_mask_matches_the_official_construction():
    """The vectorised mask equals Swin's slice-based one for sizes beyond the training patch."""
    for h, w, ws in [(16, 24, 8), (8, 8, 8), (21, 14, 7), (12, 20, 4)]:
        shift = ws // 2
        img = torch.zeros(1, h, w, 1)
        cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        for i, hs in enumerate(cuts):
            for j, wsl in enumerate(cuts):
                img[:, hs, wsl, :] = 3 * i + j
        windows = window_partition(img, ws).view(-1, ws * ws)
        diff = windows.unsqueeze(1) - windows.unsqueeze(2)
        expected = diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)
        assert torch.equal(shifted_window_mask(h, w, ws, shift), expected)
    index = relative_position_index(2)
    assert index.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


# -- any input size --------------------------------------------------------------------------------------------------

ODD_SIZES = [(1, 1), (7, 13), (17, 9), (2, 31)]


@pytest.mark.parametrize("arch", ["swinir", "swin2sr", "ditn_real", "ditn", "ipt"])
def test_odd_sizes(arch):
    spec = get_arch(arch)
    for scale in spec.scales:
        model = create_model(arch, scale=scale, **spec.tiny).eval()
        for h, w in ODD_SIZES:
            with torch.no_grad():
                out = model(torch.rand(1, 3, h, w) * getattr(model, "input_range", 1.0))
            assert out.shape == (1, 3, h * scale, w * scale), (scale, h, w)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["swinir", "swin2sr"])
def test_fused_attention_path_matches(arch, monkeypatch):
    """The fused-kernel branch (taken on CUDA) against the official op sequence, forced here on the CPU."""
    import litesr.archs.swinir as swinir

    model = create_model(arch, scale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8).eval()
    load_into(model, _random_params(model))
    x = torch.rand(2, 3, 9, 6)
    with torch.no_grad():
        exact = model(x)
        monkeypatch.setattr(swinir, "use_fused_attention", lambda q: True)
        fused = model(x)
    assert (exact - fused).abs().max().item() <= 1e-5


def test_swin2sr_forward_all_outputs():
    model = create_model("swin2sr", scale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=4, img_size=8,
                         upsampler="pixelshuffle_hf").eval()
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        base, sr, high = model.forward_all(x)
        assert torch.equal(sr, model(x))
    assert base.shape == sr.shape == high.shape == (1, 3, 10, 14)
    mean = model.mean
    assert torch.allclose(sr - mean, (base - mean) + (high - mean), atol=1e-5)


# -- IPT tasks -------------------------------------------------------------------------------------------------------


def test_ipt_task_api():
    model = create_model("ipt", scale=3, **{**IPT_TINY, "num_heads": 2}).eval()
    assert (model.task, model.scale) == ("sr_x3", 3)
    model.set_task("denoise30")
    assert (model.task, model.scale) == ("denoise30", 1)
    x = torch.rand(1, 3, 8, 8) * 255
    with torch.no_grad():
        denoised = model(x)
        upscaled = model(x, scale=4)
    assert denoised.shape == (1, 3, 8, 8) and upscaled.shape == (1, 3, 32, 32) and model.task == "sr_x4"
    with pytest.raises(ConfigError, match="no task 'derain'"):
        model.set_task("derain")
    with pytest.raises(ConfigError, match="no x8 task"):
        model.set_scale(8)
    with pytest.raises(ConfigError):
        create_model("ipt", tasks=("sr_x2", "sr_x2"), n_feats=4, patch_size=8, patch_dim=2, num_heads=2)


def test_ipt_batch_matches_single_images():
    model = create_model("ipt", **IPT_TINY).eval()
    x = torch.rand(3, 3, 13, 10) * 255
    with torch.no_grad():
        assert torch.allclose(model(x), torch.cat([model(x[i : i + 1]) for i in range(3)]), atol=1e-4)


# -- released weights ------------------------------------------------------------------------------------------------


def test_ditn_real_checkpoint_loads_by_detection(weights_dir):
    path = weights_dir / "DITN" / "DITN_Real_x4.pth"
    inventory = json.loads((weights_dir / "inventory.json").read_text())["DITN/DITN_Real_x4.pth"]
    model = load_model(path)
    assert model.litesr_arch == "ditn_real" and model.scale == 4
    assert count_parameters(model) == inventory["n_params"] == 444_112
    assert [m.arch for m in detect_architecture(load_state_dict(path))] == ["ditn_real"]


@pytest.mark.slow
def test_ditn_real_set5_x4(weights_dir, datasets_dir):
    """The "Set5 measured" value of the weights inventory: 32.10 / 0.8940 (within 0.02 dB)."""
    from litesr.evaluate import evaluate

    model = load_model(weights_dir / "DITN" / "DITN_Real_x4.pth")
    result = evaluate(model, "Set5", 4, data_root=datasets_dir)
    assert math.isclose(result.psnr, 32.10, abs_tol=0.02)
    assert math.isclose(result.ssim, 0.8940, abs_tol=0.0005)
