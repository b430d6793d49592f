"""Evaluation: published numbers reproduced, LR paths agree, dataset discovery and its errors, the eval CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litesr import DatasetError, create_model, load_model
from litesr.cli import main
from litesr.data.benchmark import open_dataset
from litesr.evaluate import DatasetResult, evaluate, quantize_uint8
from litesr.imresize import bicubic_downsample_uint8
from litesr.metrics import calculate_metrics

# Published PSNR/SSIM (Y, border = scale), see ../shared/reference/published_numbers.md.
# Bicubic: RCAN's BI table; IMDN: its paper table (x2 in the IMDN README; x3/x4 via SwinIR/SSIU/SAFMN).
BICUBIC = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688), ("Set14", 3): (27.55, 0.7742), ("Set14", 4): (26.00, 0.7027),
    ("B100", 2): (29.56, 0.8431), ("B100", 3): (27.21, 0.7385), ("B100", 4): (25.96, 0.6675),
}
IMDN = {
    ("Set5", 2): (38.00, 0.9605), ("Set5", 3): (34.36, 0.9270), ("Set5", 4): (32.21, 0.8948),
    ("Set14", 2): (33.63, 0.9177), ("Set14", 3): (30.32, 0.8417), ("Set14", 4): (28.58, 0.7811),
    ("B100", 2): (32.19, 0.8996), ("B100", 3): (29.09, 0.8046), ("B100", 4): (27.56, 0.7353),
}



def _save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _image(seed: int, h: int, w: int, gray: bool = False) -> np.ndarray:
    """A smooth random image (bicubic does well on it, so PSNR is finite and far from trivial)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, size=(1, 1 if gray else 3, 5, 5))
    up = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bicubic", align_corners=True)
    pixels = (up[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return pixels[..., 0] if gray else pixels


@pytest.fixture
def tiny_set(tmp_path: Path) -> Path:
    """root/Tiny/HR with three images (one gray, one of odd size) and EDSR-style LR_bicubic/X2 files."""
    root = tmp_path / "data"
    hr = {"a": _image(0, 40, 36), "b": _image(1, 33, 47), "g": _image(2, 30, 30, gray=True)}
    for name, pixels in hr.items():
        _save(root / "Tiny" / "HR" / f"{name}.png", pixels)
        _save(root / "Tiny" / "LR_bicubic" / "X2" / f"{name}x2.png", bicubic_downsample_uint8(pixels, 2))
    return root


# ------------------------------------------------------------------------------------------- published numbers


def test_imdn_x4_set5_reproduces_the_paper(datasets_dir, weights_dir):
    model = load_model(weights_dir / "IMDN" / "IMDN_x4.pth")
    result = evaluate(model, "Set5", 4, data_root=datasets_dir)
    psnr, ssim = IMDN[("Set5", 4)]
    assert len(result.images) == 5
    assert abs(result.psnr - psnr) <= 0.01, result.psnr
    assert abs(result.ssim - ssim) <= 0.0005, result.ssim


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_set5_reproduces_the_published_row(datasets_dir, scale):
    result = evaluate(create_model("bicubic", scale=scale), "Set5", scale, data_root=datasets_dir)
    psnr, _ = BICUBIC[("Set5", scale)]
    assert abs(result.psnr - psnr) <= 0.02, result.psnr


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["Set14", "B100"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_published_numbers_set14_b100(datasets_dir, weights_dir, dataset, scale):
    imdn = evaluate(load_model(weights_dir / "IMDN" / f"IMDN_x{scale}.pth"), dataset, scale, data_root=datasets_dir)
    assert abs(imdn.psnr - IMDN[(dataset, scale)][0]) <= 0.02, imdn.psnr
    assert abs(imdn.ssim - IMDN[(dataset, scale)][1]) <= 0.0005, imdn.ssim
    # The bicubic rows measured the gray Set14 bridge.png on its gray values, not on Y (see test_gray_raw_...).
    bicubic = evaluate(create_model("bicubic", scale=scale), dataset, scale, data_root=datasets_dir, gray="raw")
    assert abs(bicubic.psnr - BICUBIC[(dataset, scale)][0]) <= 0.02, bicubic.psnr


def test_given_and_generated_lr_agree_on_set5(datasets_dir):
    for scale in (2, 3, 4):
        given = open_dataset("Set5", scale, root=datasets_dir, lr_source="given")
        generated = open_dataset("Set5", scale, root=datasets_dir)
        assert given.lr_dir is not None and given.lr_dir.name == f"X{scale}"
        assert [i.name for i in given] == [i.name for i in generated] == ["baby", "bird", "butterfly", "head", "woman"]
        for a, b in zip(given, generated):
            hr_a, lr_a = given.load(a)
            hr_b, lr_b = generated.load(b)
            assert np.array_equal(hr_a, hr_b) and np.array_equal(lr_a, lr_b), (a.name, scale)
    # And so do the metrics, through evaluate.
    model = create_model("bicubic", scale=4)
    r_given = evaluate(model, "Set5", 4, data_root=datasets_dir, lr_source="given")
    r_generated = evaluate(model, "Set5", 4, data_root=datasets_dir)
    assert r_given.images == r_generated.images
    # The replicate files differ from those (at the borders only), and are found by lr_source="replicate".
    replicate = open_dataset("Set5", 4, root=datasets_dir, lr_source="replicate")
    assert replicate.lr_dir is not None and replicate.lr_dir.parent.name == "LR_bicubic_replicate"


def test_gray_benchmark_image_set14_bridge(datasets_dir):
    data = open_dataset("Set14", 4, root=datasets_dir)
    bridge = next(i for i in data if i.name == "bridge")
    with Image.open(bridge.hr_path) as im:
        assert im.mode == "L"
    hr, lr = data.load(bridge)
    assert hr.shape[2] == 3 and (hr[..., 0] == hr[..., 1]).all() and (hr[..., 0] == hr[..., 2]).all()
    assert lr.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)


# ------------------------------------------------------------------------------------------------ evaluate()


def test_evaluate_on_a_plain_folder_with_saved_images(tiny_set, tmp_path):
    model = create_model("bicubic", scale=2)
    model.train()
    out = tmp_path / "sr"
    result = evaluate(model, tiny_set / "Tiny" / "HR", 2, save_dir=out)
    assert isinstance(result, DatasetResult) and result.dataset == "Tiny"
    assert [r.name for r in result.images] == ["a", "b", "g"]
    assert all(20 < r.psnr < 80 and 0 < r.ssim <= 1 for r in result.images)
    assert result.psnr == pytest.approx(np.mean([r.psnr for r in result.images]))
    assert model.training  # restored
    saved = sorted(p.name for p in out.iterdir())
    assert saved == ["a.png", "b.png", "g.png"]
    with Image.open(out / "b.png") as im:
        assert im.size == (46, 32)  # 47x33 mod-cropped to x2
    # The saved SR image is the one measured.
    hr = np.asarray(Image.open(tiny_set / "Tiny" / "HR" / "a.png"))
    sr = np.asarray(Image.open(out / "a.png"))
    assert calculate_metrics(sr, hr, 2).psnr == pytest.approx(result.images[0].psnr, abs=1e-9)
    d = result.to_dict()
    assert d["psnr"] == pytest.approx(result.psnr) and len(d["images"]) == 3 and d["crop_border"] == 2
    json.dumps(d)


def test_evaluate_options_and_scale_checks(tiny_set):
    bicubic = create_model("bicubic", scale=2)
    y = evaluate(bicubic, "Tiny", 2, data_root=tiny_set)
    rgb = evaluate(bicubic, "Tiny", 2, data_root=tiny_set, y_channel=False, crop_border=0)
    assert rgb.crop_border == 0 and not rgb.y_channel
    assert y.psnr != pytest.approx(rgb.psnr)
    # A multi-scale model is switched to the asked scale and back.
    evaluate(bicubic, "Tiny", 3, data_root=tiny_set)
    assert bicubic.scale == 2
    # A single-scale model refuses another scale.
    imdn = create_model("imdn", scale=4, nf=16, num_modules=2)
    with pytest.raises(Exception, match="x4"):
        evaluate(imdn, "Tiny", 2, data_root=tiny_set)
    # The trainer's call: a folder, a scale, a device and an explicit LR folder.
    with torch.no_grad():
        r = evaluate(bicubic, tiny_set / "Tiny" / "HR", 2, device="cpu", lr_dir=tiny_set / "Tiny" / "LR_bicubic")
    assert r.images == y.images and r.lr_source == "given"


def test_gray_raw_measures_gray_files_on_their_values(tiny_set):
    bicubic = create_model("bicubic", scale=2)
    on_y = {r.name: r for r in evaluate(bicubic, "Tiny", 2, data_root=tiny_set).images}
    raw = {r.name: r for r in evaluate(bicubic, "Tiny", 2, data_root=tiny_set, gray="raw").images}
    # RGB files are unaffected; the gray one loses the Y range compression 219/255 (bicubic keeps channels equal).
    assert raw["a"] == on_y["a"] and raw["b"] == on_y["b"]
    assert raw["g"].psnr == pytest.approx(on_y["g"].psnr - 20 * math.log10(255 / 219), abs=1e-9)
    assert raw["g"].ssim != pytest.approx(on_y["g"].ssim, abs=1e-6)


def test_quantize_rounds_half_away_from_zero():
    x = torch.tensor([0.0, 0.5 / 255, 2.5 / 255, 1.2, -0.3, 254.5 / 255]).view(1, 1, 6).expand(3, 1, 6)
    assert quantize_uint8(x)[0, :, 0].tolist() == [0, 1, 3, 255, 0, 255]


# --------------------------------------------------------------------------------------------------- discovery


def test_dataset_layouts(tiny_set, tmp_path, monkeypatch):
    # A name under the root, case-insensitive; the root from the environment.
    assert len(open_dataset("tiny", 2, root=tiny_set)) == 3
    monkeypatch.setenv("LITESR_DATA_ROOT", str(tiny_set))
    assert open_dataset("Tiny", 2).name == "Tiny"
    # EDSR naming (<name>x2.png) and same-name files (SelfExSR) are both paired.
    given = open_dataset("Tiny", 2, lr_source="given")
    assert [i.lr_path.name for i in given] == ["ax2.png", "bx2.png", "gx2.png"]
    same = tmp_path / "same"
    for item in given:
        _save(same / "LR_bicubic_replicate" / "X2" / f"{item.name}.png", given.load(item)[1])
        (same / "HR").mkdir(parents=True, exist_ok=True)
        (same / "HR" / item.hr_path.name).write_bytes(item.hr_path.read_bytes())
    replicate = open_dataset(same, 2, lr_source="replicate")
    assert [i.lr_path.name for i in replicate] == ["a.png", "b.png", "g.png"]
    # Without replicate files, lr_source="replicate" generates with the replicate border.
    generated = open_dataset(tiny_set / "Tiny", 2, lr_source="replicate")
    assert generated.lr_dir is None and generated.border == "replicate"
    # DIV2K layout: X_HR next to X_LR_bicubic/X2.
    div2k = tmp_path / "DIV2K"
    for item in given:
        _save(div2k / "DIV2K_valid_HR" / f"{item.name}.png", np.asarray(Image.open(item.hr_path)))
        _save(div2k / "DIV2K_valid_LR_bicubic" / "X2" / f"{item.name}x2.png", given.load(item)[1])
    _save(div2k / "DIV2K_train_HR" / "z.png", _image(5, 8, 8))
    d = open_dataset(div2k, 2, lr_source="given")
    assert d.hr_dir.name == "DIV2K_valid_HR" and len(d) == 3 and d.lr_dir.parent.name == "DIV2K_valid_LR_bicubic"
    # B100 is also known as BSD100.
    (tmp_path / "r" / "BSD100").mkdir(parents=True)
    _save(tmp_path / "r" / "BSD100" / "1.png", _image(6, 16, 16))
    assert open_dataset("B100", 4, root=tmp_path / "r").name == "BSD100"


def test_dataset_errors_are_one_clear_line(tiny_set, tmp_path):
    def error(*args, **kwargs) -> str:
        with pytest.raises(DatasetError) as info:
            data = open_dataset(*args, **kwargs)
            for item in data:
                data.load(item)
        message = str(info.value)
        assert "\n" not in message
        return message

    assert "Set7" in error("Set7", 2, root=tiny_set) and "Tiny" in error("Set7", 2, root=tiny_set)
    assert "data root" in error("Set5", 2, root=tmp_path / "nowhere")
    assert "no such dataset folder" in error(str(tmp_path / "missing" / "Set5"), 2)
    (tmp_path / "empty" / "HR").mkdir(parents=True)
    assert "no images" in error(tmp_path / "empty", 2)
    # An unreadable image names the file.
    broken = tmp_path / "broken"
    _save(broken / "HR" / "ok.png", _image(0, 16, 16))
    (broken / "HR" / "bad.png").write_bytes(b"not a png at all")
    assert "bad.png" in error(broken, 2)
    # No LR folder for the asked scale.
    assert "X3" in error("Tiny", 3, root=tiny_set, lr_source="given")
    # An LR file missing: which HR image has no partner.
    (tiny_set / "Tiny" / "LR_bicubic" / "X2" / "bx2.png").unlink()
    assert "b.png" in error("Tiny", 2, root=tiny_set, lr_source="given")
    # An LR file of the wrong size: which file, its size and the expected one.
    _save(tiny_set / "Tiny" / "LR_bicubic" / "X2" / "bx2.png", _image(0, 10, 10))
    message = error("Tiny", 2, root=tiny_set, lr_source="given")
    assert "bx2.png" in message and "10x10" in message and "expected 23x16" in message
    with pytest.raises(DatasetError, match="unknown LR source"):
        open_dataset("Tiny", 2, root=tiny_set, lr_source="bilinear")


# -------------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_csv_and_json(tiny_set, tmp_path, capsys):
    csv_path, json_path, images = tmp_path / "out" / "r.csv", tmp_path / "out" / "r.json", tmp_path / "sr"
    code = main(["eval", "--model", "bicubic", "--data-root", str(tiny_set), "--dataset", "Tiny", "--scale", "2",
                 "--scale", "3", "--per-image", "--csv", str(csv_path), "--json", str(json_path),
                 "--save-images", str(images), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Tiny" in printed and "x3" in printed
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 2 * (3 + 1)
    means = [r for r in rows if r["image"] == "mean"]
    payload = json.loads(json_path.read_text())
    assert [r["scale"] for r in payload["results"]] == [2, 3]
    assert float(means[0]["psnr"]) == pytest.approx(payload["results"][0]["psnr"], abs=1e-5)
    assert payload["results"][0]["psnr"] > 20 and not math.isnan(payload["results"][1]["ssim"])
    assert sorted(p.name for p in (images / "Tiny" / "x3").iterdir()) == ["a.png", "b.png", "g.png"]


def test_cli_checkpoint_scale_and_errors(tiny_set, tmp_path, capsys):
    from litesr import save_safetensors

    ckpt = tmp_path / "tiny_imdn_x2.safetensors"
    save_safetensors(create_model("imdn", scale=2, nf=16, num_modules=2).state_dict(), ckpt)
    # --model auto (the default with --weights) and the checkpoint's own scale when --scale is not given.
    assert main(["eval", "--weights", str(ckpt), "--data-root", str(tiny_set), "--dataset", "Tiny",
                 "--json", str(tmp_path / "r.json"), "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["scale"] == 2
    capsys.readouterr()
    # A single-scale checkpoint at another scale: a one-line error, exit code 1.
    assert main(["eval", "--weights", str(ckpt), "--data-root", str(tiny_set), "--dataset", "Tiny",
                 "--scale", "4"]) == 1
    assert "checkpoint is for x2" in capsys.readouterr().err
    assert main(["eval", "--model", "bicubic", "--data-root", str(tiny_set), "--dataset", "Nope", "--scale", "2"]) == 1
    assert "Nope" in capsys.readouterr().err
    assert main(["eval", "--model", "imdn", "--data-root", str(tiny_set), "--dataset", "Tiny", "--scale", "2"]) == 1
    assert "--weights" in capsys.readouterr().err


def test_y_models_are_measured_on_their_own_rounded_luma(tiny_set):
    """A Y-channel model sees the luma rounded to 8-bit levels and is measured on its own output plane (rounded),
    against the float BT.601 Y of the HR image: the SRCNN/VDSR/FSRCNN MATLAB protocol, not the Y of the RGB image."""
    from litesr.inference import model_luma, run_model_with_luma
    from litesr.metrics import rgb_to_y

    torch.manual_seed(0)
    model = create_model("fsrcnn", scale=2, num_channels=1, d=8, s=4, m=1).eval()
    x = torch.rand(1, 3, 6, 5)
    luma = model_luma(model, x)
    assert torch.equal(luma * 255, (luma * 255).round())  # 8-bit levels
    model.luma_uint8 = False
    assert not torch.equal(model_luma(model, x) * 255, luma * 255)
    model.luma_uint8 = True

    result = evaluate(model, "Tiny", 2, data_root=tiny_set)
    dataset = open_dataset("Tiny", 2, root=tiny_set)
    for item, measured in zip(dataset, result.images, strict=True):
        sample = dataset.load_sample(item)
        lr = torch.from_numpy(sample.lr).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            rgb, plane = run_model_with_luma(model, lr)
        ours = quantize_uint8(plane[0])[..., 0].astype(np.float64)
        expected = calculate_metrics(ours, rgb_to_y(sample.hr), 2, y_channel=False, peak=255.0)
        via_rgb = calculate_metrics(quantize_uint8(rgb[0]), sample.hr, 2)
        assert measured.psnr == pytest.approx(expected.psnr, abs=1e-9)
        assert measured.psnr != pytest.approx(via_rgb.psnr, abs=1e-6)
