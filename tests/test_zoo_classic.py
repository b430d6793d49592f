"""Zoo, classic models: SRCNN, VDSR, SRResNet/SRGAN (+ MSRResNet, the leftthomas generator, the discriminator),
EDSR/MDSR, RCAN, SAN, CSNLN, and the perceptual losses (VGG19 features, TV, Gram).

Published parameter counts of the paper configurations (built on the meta device), round trips through safetensors and
auto-detection, RCAN against spandrel 0.4.2 (the only one of these architectures spandrel has), the VDSR and
leftthomas SRGAN checkpoints of ../shared/weights loading by detection alone, odd input sizes, tiled inference, EDSR
warm start, SAN's covariance pooling and Newton-Schulz square root.
"""

from __future__ import annotations

import inspect
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import litesr
from litesr.archs.edsr import warm_start
from litesr.archs.san import covariance_pool, sqrtm_newton_schulz
from litesr.archs.srresnet import SRGANDiscriminator
from litesr.detect import detect_architecture
from litesr.errors import CheckpointError, ConfigError
from litesr.imresize import imresize
from litesr.inference import rgb_to_ycbcr, run_model, upscale_tensor
from litesr.registry import count_parameters, create_model, get_arch, get_variant

ARCHS = ("srcnn", "vdsr", "srresnet", "msrresnet", "srgan_leftthomas", "edsr", "mdsr", "rcan", "san", "csnln")

# (arch, config): small widths, but every structural option the detectors must read back.
ROUND_TRIPS = [
    ("srcnn", {"scale": 3, "n1": 8, "n2": 4, "f2": 1}),
    ("srcnn", {"scale": 2, "num_channels": 3, "n1": 6, "n2": 4, "f1": 5, "f3": 3}),
    ("vdsr", {"scale": 2, "num_feat": 8, "num_layers": 5}),
    ("srresnet", {"scale": 4, "num_blocks": 2, "num_feat": 8}),
    ("srresnet", {"scale": 3, "num_blocks": 1, "num_feat": 8}),
    ("msrresnet", {"scale": 2, "num_feat": 8, "num_block": 2}),
    ("msrresnet", {"scale": 3, "num_feat": 8, "num_block": 1}),
    ("msrresnet", {"scale": 4, "num_feat": 8, "num_block": 1}),
    ("srgan_leftthomas", {"scale": 2, "num_blocks": 2, "num_feat": 8}),
    ("srgan_leftthomas", {"scale": 8, "num_blocks": 1, "num_feat": 8}),
    ("edsr", {"scale": 2, "n_resblocks": 2, "n_feats": 8, "res_scale": 1.0}),
    ("edsr", {"scale": 3, "n_resblocks": 1, "n_feats": 8, "res_scale": 1.0, "rgb_range": 1.0}),
    ("edsr", {"scale": 4, "n_resblocks": 2, "n_feats": 8, "res_scale": 1.0}),
    ("mdsr", {"scale": 3, "n_resblocks": 2, "n_feats": 8}),
    ("mdsr", {"scale": 4, "n_resblocks": 1, "n_feats": 8, "scales": (2, 4)}),
    ("rcan", {"scale": 2, "n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}),
    ("rcan", {"scale": 8, "n_resgroups": 1, "n_resblocks": 3, "n_feats": 8, "reduction": 2, "rgb_range": 1.0}),
    ("san", {"scale": 3, "n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4}),
    ("san", {"scale": 4, "n_resgroups": 1, "n_resblocks": 1, "n_feats": 16, "reduction": 8}),
    ("csnln", {"scale": 2, "n_feats": 8, "depth": 2}),
    ("csnln", {"scale": 3, "n_feats": 8, "depth": 1}),
    ("csnln", {"scale": 4, "n_feats": 8, "depth": 2}),
]

# (variant, scale, published count, tolerance): the published value and its rounding (published_numbers.md, the
# weights inventory for the leftthomas generator, whose counts are exact).
PAPER_COUNTS = [
    ("srcnn_915", 3, 8_000, 500),  # IMDN table "8K" (9-1-5, Y)
    ("srcnn", 3, 57_000, 500),  # SAFMN table "57K" (9-5-5, Y)
    ("vdsr", 2, 665_000, 500),  # 664,704 exactly: the official port's checkpoint (test_vdsr_checkpoint_...)
    ("edsr_baseline", 2, 1_370_000, 500),
    ("edsr_baseline", 3, 1_555_000, 500),
    ("edsr_baseline", 4, 1_518_000, 500),
    ("edsr", 2, 40_700_000, 50_000),
    ("edsr", 3, 43_700_000, 50_000),
    ("edsr", 4, 43_100_000, 50_000),
    ("rcan", 4, 15_600_000, 50_000),
    ("san", 2, 15_700_000, 50_000),
    ("srgan_leftthomas", 2, 586_379, 0),
    ("srgan_leftthomas", 4, 734_092, 0),
    ("srgan_leftthomas", 8, 881_805, 0),
]

# Paper configurations as detection must read them back from the tensor shapes alone.
PAPER_DETECTIONS = [
    ("edsr", 2, {"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1}),
    ("edsr_baseline", 4, {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0}),
    ("mdsr", 2, {"n_resblocks": 80, "n_feats": 64, "scales": (2, 3, 4)}),
    ("rcan", 3, {"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16}),
    ("san", 4, {"n_resgroups": 20, "n_resblocks": 10, "n_feats": 64, "reduction": 16}),
    ("csnln", 4, {"n_feats": 128, "depth": 12}),
    ("srresnet", 4, {"num_blocks": 16, "num_feat": 64}),
    ("vdsr", 2, {"num_layers": 20, "num_feat": 64, "num_channels": 1}),
    ("srcnn", 3, {"f1": 9, "f2": 5, "f3": 5, "n1": 64, "n2": 32}),
]


def _randomise(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Small noise in every trainable parameter and in BN statistics; frozen mean shifts stay as built."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=gen) + 0.5)
    return model


# Options that change what a model computes but leave no trace in its tensors: detection cannot read them back.
BEHAVIOUR_OPTIONS = {"vdsr": {"uint8_upsampling"}}


def _full_config(arch: str, config: dict) -> dict:
    params = inspect.signature(get_arch(arch).builder).parameters
    skip = {"scale"} | BEHAVIOUR_OPTIONS.get(arch, set())
    full = {k: p.default for k, p in params.items() if k not in skip and p.default is not inspect.Parameter.empty}
    return {**full, **config}


def _input(model: torch.nn.Module, h: int, w: int, seed: int = 1) -> torch.Tensor:
    channels = 1 if model.color_space == "y" else 3
    return torch.rand(1, channels, h, w, generator=torch.Generator().manual_seed(seed)) * model.input_range


@pytest.mark.parametrize(("variant", "scale", "published", "tolerance"), PAPER_COUNTS)
def test_paper_parameter_counts(variant: str, scale: int, published: int, tolerance: int) -> None:
    with torch.device("meta"):
        model = create_model(variant, scale=scale)
    assert abs(count_parameters(model) - published) <= tolerance, count_parameters(model)
    registered = get_variant(variant).paper_params.get(scale)
    assert registered is None or abs(registered - published) <= tolerance


@pytest.mark.parametrize(("variant", "scale", "expected"), PAPER_DETECTIONS)
def test_paper_configurations_are_detected(variant: str, scale: int, expected: dict) -> None:
    with torch.device("meta"):
        model = create_model(variant, scale=scale)
    matches = detect_architecture(model.state_dict())
    assert [m.arch for m in matches] == [get_variant(variant).arch]
    config = matches[0].config
    assert {k: config[k] for k in expected} == expected
    if not get_arch(matches[0].arch).builder.multi_scale:
        assert config["scale"] == scale


@pytest.mark.parametrize(("arch", "config"), ROUND_TRIPS, ids=lambda v: v if isinstance(v, str) else str(v["scale"]))
def test_round_trip_through_detection(arch: str, config: dict, tmp_path) -> None:
    model = _randomise(create_model(arch, **config)).eval()
    path = tmp_path / f"{arch}.safetensors"
    litesr.save_safetensors(model.state_dict(), path)
    loaded = litesr.load_model(path, scale=config["scale"])
    assert loaded.litesr_arch == arch
    detected = {k: v for k, v in loaded.litesr_config.items() if k != "scale"}
    want = {k: v for k, v in _full_config(arch, config).items() if k != "scale"}
    assert {k: (tuple(v) if isinstance(v, list) else v) for k, v in detected.items()} == want
    assert loaded.scale == config["scale"] and loaded.input_range == model.input_range
    x = _input(model, 7, 5)  # odd sizes
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(loaded(x), expected)
    assert expected.shape[-2:] == (7 * config["scale"], 5 * config["scale"])
    assert torch.isfinite(expected).all()


def test_rgb_range_is_read_off_the_mean_shift() -> None:
    for rgb_range in (1.0, 255.0):
        model = create_model("rcan", scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=2, rgb_range=rgb_range)
        assert litesr.load_model(model.state_dict()).input_range == rgb_range


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size", [(3, 5), (9, 4)])
def test_odd_sizes_through_the_engine(arch: str, size: tuple[int, int]) -> None:
    spec = get_arch(arch)
    scale = 3 if 3 in spec.scales else spec.scales[0]
    model = _randomise(create_model(arch, scale=scale, **spec.tiny)).eval()
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = run_model(model, x)
    assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_matches_spandrel(spandrel, scale: int) -> None:
    model = _randomise(create_model("rcan", scale=scale, n_resgroups=2, n_resblocks=3, n_feats=16, reduction=4)).eval()
    descriptor = spandrel.ModelLoader().load_from_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    reference = descriptor.model.eval()
    assert descriptor.scale == scale
    x = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = reference(x.clone())  # spandrel scales [0, 1] by its rgb_range (255) in place
        got = model(x * 255.0) / 255.0
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.parametrize("arch", ["vdsr", "edsr", "rcan", "msrresnet"])
def test_tiled_inference_matches_whole_image(arch: str) -> None:
    spec = get_arch(arch)
    config = {**spec.tiny, **({"rgb_range": 1.0} if arch in ("edsr", "rcan") else {})}
    model = _randomise(create_model(arch, scale=2, **config)).eval()
    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(4))
    whole = upscale_tensor(model, x)
    tiled = upscale_tensor(model, x, tile=24, tile_overlap=12)
    assert tiled.shape == whole.shape == (1, 3, 80, 72)
    assert (tiled - whole).abs().max().item() < 2e-3


def test_san_runs_tiled() -> None:
    model = _randomise(create_model("san", scale=2, **get_arch("san").tiny)).eval()
    x = torch.rand(1, 3, 20, 18, generator=torch.Generator().manual_seed(5))
    tiled = upscale_tensor(model, x, tile=12, tile_overlap=4)
    assert tiled.shape == (1, 3, 40, 36) and torch.isfinite(tiled).all()


def test_vdsr_checkpoint_loads_by_detection(weights_dir, datasets_dir) -> None:
    model = litesr.load_model(weights_dir / "VDSR" / "model_epoch_50_state_dict.pth")
    assert model.litesr_arch == "vdsr" and model.multi_scale and model.color_space == "y"
    assert model.litesr_config == {"scale": 2, "num_channels": 1, "num_feat": 64, "num_layers": 20}
    assert count_parameters(model) == 664_704 and model.uint8_upsampling
    # One network for every scale: on a butterfly crop (official protocol: LR from the HR Y channel), it must beat
    # bicubic clearly at x2, x3 and x4. A wrong layer order, a missing residual or a [0, 255] input would not.
    rgb = np.asarray(Image.open(datasets_dir / "Set5" / "HR" / "butterfly.png").convert("RGB"))[96:144, 96:144]
    hr_y = rgb_to_ycbcr(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].double() / 255)[:, :1]
    for scale in (2, 3, 4):
        lr_y = imresize(hr_y, scale=1 / scale)
        model.set_scale(scale)
        with torch.no_grad():
            sr = model(lr_y.float()).double().clamp(0, 1)
        bicubic = imresize(lr_y, scale=scale).clamp(0, 1)
        crop = (..., slice(scale, -scale), slice(scale, -scale))
        psnr = [10 * math.log10(1 / F.mse_loss(out[crop], hr_y[crop]).item()) for out in (sr, bicubic)]
        assert psnr[0] > psnr[1] + 1.0, (scale, psnr)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_leftthomas_srgan_checkpoints_load_by_detection(weights_dir, scale: int) -> None:
    path = weights_dir / "SRResNet_SRGAN" / f"netG_epoch_{scale}_100.pth"
    model = litesr.load_model(path)
    assert model.litesr_arch == "srgan_leftthomas"
    assert model.litesr_config == {"scale": scale, "num_blocks": 5, "num_feat": 64}
    inventory = json.loads((weights_dir / "inventory.json").read_text())
    assert count_parameters(model) == inventory[f"SRResNet_SRGAN/netG_epoch_{scale}_100.pth"]["n_params"]
    # A smooth ramp must come out as (roughly) its upscaled self, inside [0, 1] because of (tanh + 1) / 2.
    ramp = torch.linspace(0.2, 0.8, 12).view(1, 1, 1, 12).expand(1, 3, 12, 12).contiguous()
    with torch.no_grad():
        out = model(ramp)
    assert out.shape == (1, 3, 12 * scale, 12 * scale) and out.min() >= 0 and out.max() <= 1
    reference = F.interpolate(ramp, scale_factor=scale, mode="bilinear", align_corners=False)
    inner = (..., slice(2 * scale, -2 * scale), slice(2 * scale, -2 * scale))
    assert (out[inner] - reference[inner]).abs().mean() < 0.05


def test_leftthomas_batchnorm_has_no_counter() -> None:
    model = create_model("srgan_leftthomas", scale=2, num_blocks=1, num_feat=8)
    state = model.state_dict()
    assert not any(k.endswith("num_batches_tracked") for k in state)
    state["block2.bn1.num_batches_tracked"] = torch.tensor(7)  # a newer save of the same network
    model.load_state_dict(state)


def test_edsr_warm_start_from_x2() -> None:
    x2 = _randomise(create_model("edsr", scale=2, n_resblocks=2, n_feats=8))
    source = x2.state_dict()
    x3 = create_model("edsr", scale=3, n_resblocks=2, n_feats=8)
    x4 = create_model("edsr", scale=4, n_resblocks=2, n_feats=8)
    # The upsampler's first conv changes shape at x3; x4 adds a second one: the engine can tell what to skip.
    assert source["tail.0.0.weight"].shape != x3.state_dict()["tail.0.0.weight"].shape
    assert "tail.0.2.weight" in x4.state_dict() and "tail.0.2.weight" not in source
    assert warm_start(x3, source) == ["tail.0.0.weight", "tail.0.0.bias"]
    assert warm_start(x4, source) == ["tail.0.2.weight", "tail.0.2.bias"]
    for model in (x3, x4):
        for key, value in model.state_dict().items():
            if not key.startswith("tail.0."):
                assert torch.equal(value, source[key]), key
    with pytest.raises(CheckpointError, match="outside the upsampler"):
        warm_start(create_model("edsr", scale=3, n_resblocks=2, n_feats=16), source)


def test_mdsr_one_model_three_scales() -> None:
    model = _randomise(create_model("mdsr", scale=2, n_resblocks=1, n_feats=8)).eval()
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(6)) * 255
    with torch.no_grad():
        outputs = {s: model(x, s) for s in (2, 3, 4)}
        assert {s: tuple(o.shape[-2:]) for s, o in outputs.items()} == {2: (12, 10), 3: (18, 15), 4: (24, 20)}
        model.upsample[1][0].weight.add_(1.0)  # the x3 upsampler: x2 and x4 must not change
        assert torch.equal(model(x, 2), outputs[2]) and torch.equal(model(x, 4), outputs[4])
        assert not torch.equal(model(x, 3), outputs[3])
        model.set_scale(4)
        assert torch.equal(model(x), outputs[4])
    with pytest.raises(ValueError):
        model.set_scale(8)


def test_srgan_discriminator() -> None:
    disc = SRGANDiscriminator(input_size=32)
    convs = [m for m in disc.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in disc.features) == 7
    assert [m.out_features for m in disc.classifier if isinstance(m, torch.nn.Linear)] == [1024, 1]
    assert disc(torch.rand(2, 3, 32, 32)).shape == (2, 1)
    with pytest.raises(ValueError, match="32x32"):
        disc(torch.rand(1, 3, 48, 48))


def test_san_covariance_and_square_root() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(2, 5, 4, 3, generator=gen, dtype=torch.float64)
    m = 12
    centring = torch.eye(m, dtype=torch.float64) / m - torch.full((m, m), 1.0 / m / m, dtype=torch.float64)
    flat = x.reshape(2, 5, m)
    assert torch.allclose(covariance_pool(x), flat @ centring @ flat.transpose(1, 2))  # MPN-COV's definition
    # With enough iterations the Newton-Schulz recursion converges to the true square root of a well-conditioned matrix.
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    spd = (q @ torch.diag(torch.tensor([1.0, 0.9, 0.8, 0.7, 0.6], dtype=torch.float64)) @ q.T)[None]
    root = sqrtm_newton_schulz(spd, iterations=40)
    assert torch.allclose(root @ root, spd, atol=1e-8)
    assert torch.isfinite(sqrtm_newton_schulz(torch.zeros(1, 3, 3), 5)).all()  # flat features: no NaN


# --------------------------------------------------------------------------------------------- perceptual losses


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    from litesr.perceptual import build_vgg19_features

    torch.manual_seed(8)
    state = {f"features.{k}": v for k, v in build_vgg19_features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision files carry the classifier too
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


def test_vgg_layers_follow_torchvision() -> None:
    from litesr.perceptual import VGG19_LAYERS, build_vgg19_features

    assert (VGG19_LAYERS["conv1_1"], VGG19_LAYERS["relu2_2"], VGG19_LAYERS["conv5_4"], VGG19_LAYERS["relu5_4"]) == (
        0, 8, 34, 35)
    keys = list(build_vgg19_features().state_dict())
    convs = sorted({int(k.split(".")[0]) for k in keys})
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision vgg19().features


def test_vgg_feature_extractor(vgg_file) -> None:
    from litesr.perceptual import VGGFeatureExtractor

    extractor = VGGFeatureExtractor(vgg_file, ["conv5_4", "relu5_4", "relu2_2"])
    assert all(k.startswith("features.") for k in extractor.state_dict())
    assert not any(p.requires_grad for p in extractor.parameters())
    features = extractor(torch.rand(1, 3, 32, 32))
    assert features["relu2_2"].shape == (1, 128, 16, 16) and features["relu5_4"].shape == (1, 512, 2, 2)
    assert torch.equal(features["relu5_4"], features["conv5_4"].clamp_min(0))  # conv5_4 kept before the ReLU
    with pytest.raises(CheckpointError, match="VGG19 weights not found") as missing:
        VGGFeatureExtractor(vgg_file.parent / "absent.pth")
    assert "\n" not in str(missing.value)
    with pytest.raises(ConfigError, match="relu5_4"):
        VGGFeatureExtractor(vgg_file, ["relu5_5"])
    with pytest.raises(CheckpointError, match="not a torchvision VGG19"):
        VGGFeatureExtractor({"features.0.weight": torch.zeros(64, 1, 3, 3)}, ["relu1_1"])


def test_perceptual_tv_and_texture_losses(vgg_file) -> None:
    from litesr.losses import build_loss
    from litesr.perceptual import PerceptualLoss, gram_matrix, texture_loss, tv_loss

    hr = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    sr = (hr + 0.1 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(10))).requires_grad_(True)
    content = PerceptualLoss(str(vgg_file), {"relu2_2": 1.0})
    assert content(hr, hr).item() == 0.0
    value = content(sr, hr)
    value.backward()
    assert value.item() > 0 and sr.grad is not None and sr.grad.abs().sum() > 0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert tv_loss(ramp).item() == pytest.approx(1.0) and tv_loss(ramp, power=2).item() == pytest.approx(1.0)
    features = torch.rand(1, 4, 8, 8)
    assert torch.allclose(gram_matrix(features)[0], features[0].reshape(4, 64) @ features[0].reshape(4, 64).T / 256)
    assert texture_loss(features, features).item() == 0.0
    assert texture_loss(features, features.flip(-1)).item() == pytest.approx(0.0, abs=1e-7)  # Gram ignores position
    assert texture_loss(features, features.flip(-1), patch_size=4).item() > 0  # per patch it does not
    criterion = build_loss([{"type": "l1"}, {"type": "perceptual", "weight": 0.1, "vgg_weights": str(vgg_file)},
                            {"type": "tv", "weight": 1e-3}, {"type": "texture", "vgg_weights": str(vgg_file)}])
    total, parts = criterion(sr.detach(), hr)
    assert set(parts) == {"l1", "perceptual", "tv", "texture"} and torch.isfinite(total)


def test_vdsr_rounds_its_upsampled_input_to_8_bit_levels() -> None:
    model = create_model("vdsr", num_layers=3, num_feat=4).eval()
    torch.nn.init.zeros_(model.output.weight)  # the network adds nothing: the output is the upsampled input
    x = torch.rand(1, 1, 5, 6)
    with torch.no_grad():
        rounded = model(x)
        model.uint8_upsampling = False
        exact = model(x)
    assert torch.allclose(rounded * 255, (rounded * 255).round(), atol=1e-4)
    assert torch.allclose(exact, imresize(x, scale=2))  # MATLAB uint8 saturates too:
    assert (rounded - exact.clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.slow
def test_vdsr_reproduces_the_weights_readme_on_set5(weights_dir, datasets_dir) -> None:
    """`litesr eval` with no options: the weights README's "Set5 measured" 37.436 / 33.655 / 31.101."""
    from litesr.evaluate import evaluate

    model = litesr.load_model(weights_dir / "VDSR" / "model_epoch_50_state_dict.pth")
    for scale, measured in {2: 37.436, 3: 33.655, 4: 31.101}.items():
        assert abs(evaluate(model, "Set5", scale, data_root=datasets_dir).psnr - measured) <= 0.02, scale


@pytest.mark.slow
def test_vdsr_reproduces_the_official_port_on_set5(weights_dir, datasets_dir) -> None:
    """The pytorch-vdsr README's Set5 PSNR (37.65 / 33.77 / 31.45) under its own protocol (``generate_test_mat.m``: LR
    and bicubic made from the HR Y channel in double precision, output clipped, PSNR on Y with border = scale)."""
    # That protocol resizes in double precision: no rounding of the upsampled input.
    model = litesr.load_model(weights_dir / "VDSR" / "model_epoch_50_state_dict.pth", uint8_upsampling=False)
    readme = {2: 37.65, 3: 33.77, 4: 31.45}
    for scale, published in readme.items():
        model.set_scale(scale)
        values = []
        for name in ("baby", "bird", "butterfly", "head", "woman"):
            rgb = np.asarray(Image.open(datasets_dir / "Set5" / "HR" / f"{name}.png").convert("RGB"))
            h, w = rgb.shape[0] - rgb.shape[0] % scale, rgb.shape[1] - rgb.shape[1] % scale
            hr_y = rgb_to_ycbcr(torch.from_numpy(rgb[:h, :w].copy()).permute(2, 0, 1)[None].double() / 255)[:, :1]
            with torch.no_grad():
                sr = model(imresize(hr_y, scale=1 / scale).float()).double().clamp(0, 1)
            crop = (..., slice(scale, -scale), slice(scale, -scale))
            values.append(10 * math.log10(1 / F.mse_loss(sr[crop], hr_y[crop]).item()))
        assert abs(sum(values) / len(values) - published) < 0.01, (scale, sum(values) / len(values))
