"""`litesr eval` with metrics: every metric column in --csv and --per-image, the multi-scale table (x2/x3/x4 of one
model side by side, from one multi-scale model or one checkpoint per scale) and --no-reference on LR-only folders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from litesr.cli import main


@pytest.fixture
def hr_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "HR"
    folder.mkdir()
    base = np.linspace(0, 200, 120)[None, :, None] + rng.random((96, 120, 3)) * 50
    for i in range(2):
        Image.fromarray(np.roll(base, 7 * i, axis=1).astype(np.uint8)).save(folder / f"im{i}.png")
    return folder


def test_eval_csv_has_every_metric_column_and_the_multi_scale_table(tmp_path, hr_folder, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    out_csv, out_json = tmp_path / "r.csv", tmp_path / "r.json"
    assert main(["eval", "--model", "bicubic", "--scale", "2", "--scale", "4", "--dataset", str(hr_folder),
                 "--metric", "gmsd,sharpness", "--per-image", "--csv", str(out_csv), "--json", str(out_json),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "multi-scale" in out and "x2 PSNR" in out and "x4 gmsd" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0])[-4:] == ["psnr", "ssim", "gmsd", "sharpness"]
    assert [(r["scale"], r["image"]) for r in rows] == [("2", "im0"), ("2", "im1"), ("2", "mean"), ("4", "im0"),
                                                        ("4", "im1"), ("4", "mean")]
    results = json.loads(out_json.read_text())["results"]
    for r, res in zip((rows[0], rows[3]), results):
        assert float(r["gmsd"]) == pytest.approx(res["images"][0]["scores"]["gmsd"], rel=1e-9)
    assert float(rows[5]["gmsd"]) == pytest.approx(results[1]["scores"]["gmsd"], rel=1e-9)
    assert float(rows[0]["gmsd"]) < float(rows[3]["gmsd"])  # x2 bicubic is closer to HR than x4


def test_eval_one_checkpoint_per_scale(tmp_path, hr_folder, weights_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    files = [str(weights_dir / "IMDN" / f"IMDN_x{s}.pth") for s in (4, 2)]
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", files[0], "--weights", files[1], "--dataset", str(hr_folder), "--json",
                 str(out), "--no-progress"]) == 0
    assert [r["scale"] for r in json.loads(out.read_text())["results"]] == [2, 4]
    assert "x2 PSNR" in capsys.readouterr().out
    assert main(["eval", "--weights", files[0], "--weights", files[0], "--dataset", str(hr_folder)]) == 1
    assert "same scale" in capsys.readouterr().err


def test_eval_no_reference_scores_outputs_of_lr_folders(tmp_path, hr_folder, capsys):
    out_csv, out_json, saved = tmp_path / "nr.csv", tmp_path / "nr.json", tmp_path / "sr"
    assert main(["eval", "--no-reference", "--model", "bicubic", "--scale", "2", "--dataset", str(hr_folder),
                 "--csv", str(out_csv), "--json", str(out_json), "--save-images", str(saved)]) == 0
    res = json.loads(out_json.read_text())["results"][0]
    assert set(res["scores"]) == {"sharpness"} and len(res["images"]) == 2
    assert Image.open(saved / "HR" / "x2" / "im0.png").size == (240, 192)  # the LR inputs upscaled x2
    from litesr.metrics import create_metric

    sr = np.asarray(Image.open(saved / "HR" / "x2" / "im0.png"))
    assert res["images"][0]["scores"]["sharpness"] == pytest.approx(float(create_metric("sharpness")(sr)[0]))
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["image"] for r in rows] == ["im0", "im1", "mean"]
    for bad, message in ((["--metric", "psnr"], "full-reference, needs HR images"), (["--rgb"], "--rgb: not used"),
                         (["--metric", "niqe"], "--metric-weights niqe=FILE")):
        target = tmp_path / "bad.json"
        assert main(["eval", "--no-reference", "--model", "bicubic", "--scale", "2", "--dataset", str(hr_folder),
                     "--json", str(target), *bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not target.exists()


def test_metric_all_means_every_metric_usable_with_the_files_given(tmp_path):
    from litesr.cli.metrics import create_metrics
    from litesr.metrics.niqe import NIQEModel

    names = [m.name for m in create_metrics(["all"], None)]
    assert {"ms_ssim", "gmsd", "fsim", "fsimc", "vif", "sharpness", "psnr", "ssim"} <= set(names)
    assert not {"lpips", "dists", "niqe"} & set(names)  # their files were not given
    (tmp_path / "n.npz").write_bytes(NIQEModel(np.zeros(36), np.eye(36)).to_bytes())
    no_ref = create_metrics(["all"], [f"niqe={tmp_path / 'n.npz'}"], reference=False)
    assert [m.name for m in no_ref] == ["niqe", "sharpness"]
