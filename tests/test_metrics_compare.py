"""`litesr compare SR_DIR [HR_DIR]`: pairing by file name stem, per-image CSV/JSON with every metric column equal to
the library's scores, and one-line errors (size mismatch naming both files, gray vs RGB, typos) with nothing written."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from litesr.cli import main
from litesr.metrics import create_metric


def _images(tmp_path):
    rng = np.random.default_rng(0)
    sr_dir, hr_dir = tmp_path / "sr", tmp_path / "hr"
    sr_dir.mkdir()
    hr_dir.mkdir()
    pairs = {}
    for name in ("alpha", "beta"):
        hr = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
        sr = np.clip(hr.astype(int) + rng.integers(-12, 13, hr.shape), 0, 255).astype(np.uint8)
        Image.fromarray(hr).save(hr_dir / f"{name}.bmp")
        Image.fromarray(sr).save(sr_dir / f"{name}_x4_SR.png")
        pairs[name] = (sr, hr)
    Image.fromarray(pairs["alpha"][1]).save(hr_dir / "gamma.png")  # HR without SR: left out
    return sr_dir, hr_dir, pairs


def test_compare_pairs_by_stem_and_writes_every_metric_column(tmp_path, capsys):
    sr_dir, hr_dir, pairs = _images(tmp_path)
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    assert main(["compare", str(sr_dir), str(hr_dir), "--sr-suffix", "_x4_SR", "--metric", "psnr,ssim",
                 "--metric", "gmsd,sharpness", "--crop", "2", "--per-image", "--csv", str(out_csv),
                 "--json", str(out_json)]) == 0
    assert "gmsd" in capsys.readouterr().out
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["image"] for r in rows] == ["alpha", "beta", "mean"]
    assert list(rows[0]) == ["image", "sr_file", "hr_file", "psnr", "ssim", "gmsd", "sharpness"]
    payload = json.loads(out_json.read_text())
    for row, img in zip(rows, payload["images"]):
        sr, hr = pairs[row["image"]]
        for name in ("psnr", "ssim", "gmsd", "sharpness"):
            expected = float(create_metric(name, crop=2)(sr, hr)[0])
            assert float(row[name]) == pytest.approx(expected, rel=1e-6), name
            assert img["scores"][name] == pytest.approx(expected, rel=1e-12), name
    assert payload["mean"]["gmsd"] == pytest.approx(np.mean([i["scores"]["gmsd"] for i in payload["images"]]))
    assert payload["metrics"]["gmsd"]["better"] == "lower"


def test_compare_without_hr_takes_no_reference_metrics_only(tmp_path, capsys):
    sr_dir, _, _ = _images(tmp_path)
    out = tmp_path / "nr.json"
    assert main(["compare", str(sr_dir), "--json", str(out)]) == 0
    assert set(json.loads(out.read_text())["mean"]) == {"sharpness"}
    assert main(["compare", str(sr_dir), "--metric", "psnr", "--json", str(tmp_path / "x.json")]) == 1
    assert "full-reference, needs HR images" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("case", ["size", "gray", "unpaired", "typo", "weights", "duplicate"])
def test_compare_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    sr_dir, hr_dir, pairs = _images(tmp_path)
    args = ["compare", str(sr_dir), str(hr_dir), "--sr-suffix", "_x4_SR"]
    expect = {"size": "alpha_x4_SR.png is 78x64 but", "gray": "alpha_x4_SR.png is gray but",
              "unpaired": "extra.png has no HR image of the same name", "typo": "did you mean gmsd",
              "weights": "--metric-weights lpips=FILE", "duplicate": "have the same name stem"}[case]
    if case == "size":
        Image.fromarray(pairs["alpha"][0][:, :78]).save(sr_dir / "alpha_x4_SR.png")
    elif case == "gray":
        Image.fromarray(pairs["alpha"][0][..., 0]).save(sr_dir / "alpha_x4_SR.png")
    elif case == "unpaired":
        Image.fromarray(pairs["alpha"][0]).save(sr_dir / "extra.png")
    elif case == "typo":
        args += ["--metric", "gmds"]
    elif case == "weights":
        args += ["--metric", "lpips"]
    else:
        Image.fromarray(pairs["alpha"][0]).save(sr_dir / "alpha_x4_SR.jpg")
    out = tmp_path / "out.csv"
    assert main([*args, "--csv", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    if case == "size":
        assert "hr/alpha.bmp is 80x64" in err[0]
    assert not out.exists()
