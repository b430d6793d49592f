"""The leaderboard: paper variants, profiling, checkpoints matched by configuration, table, CSV and plot."""

from __future__ import annotations

import csv
import io
import sys

import pytest
import torch

import litesr
from litesr.checkpoint import save_safetensors
from litesr.leaderboard import build_leaderboard, paper_variants, to_csv, to_markdown, write_leaderboard
from litesr.profile import count_ops, lr_size_for_output
from litesr.registry import Variant, get_arch


def _tiny(name: str, arch: str, **extra) -> Variant:
    return Variant(name, arch, dict(get_arch(arch).tiny), f"tiny {arch}", **extra)


def test_paper_variants_collapse_aliases_and_carry_published_numbers():
    names = [v.name for v in paper_variants(2)]
    assert "swinir_light" in names and "swinir" not in names  # same configuration: the one with published PSNR
    assert "elan_light" in names and "elan" not in names
    assert "imdn" in names and "bsrn_s" not in names  # BSRN-S is published at x4 only
    imdn = litesr.get_variant("imdn")
    assert imdn.paper_psnr[2]["Set5"] == (38.00, 0.9605) and imdn.paper_macs[4] == 40.9
    assert "SwinIR T3" in imdn.description  # the source key is cited
    for variant in paper_variants():
        for scale, table in variant.paper_psnr.items():
            assert scale in get_arch(variant.arch).scales, variant.name
            assert all(20 < psnr < 45 and 0.5 < ssim < 1 for psnr, ssim in table.values()), variant.name


def test_leaderboard_on_tiny_models_with_a_checkpoint_folder(tmp_path, datasets_dir):
    torch.manual_seed(0)
    imdn = _tiny("imdn_tiny", "imdn", paper_params={2: 1000}, paper_psnr={2: {"Set5": (30.0, 0.9)}},
                 paper_macs={2: 1.0})
    rlfn = _tiny("rlfn_tiny", "rlfn", paper_params={2: 2000})
    weights = tmp_path / "weights"
    trained = litesr.create_model("imdn", scale=2, **imdn.config)
    save_safetensors(trained.state_dict(), weights / "imdn_tiny_x2.safetensors")
    other = litesr.create_model("rlfn", scale=3, **rlfn.config)  # another scale: skipped
    save_safetensors(other.state_dict(), weights / "rlfn_tiny_x3.safetensors")
    (weights / "notes.pth").write_bytes(b"not a checkpoint")  # unreadable: skipped, not fatal

    entries = build_leaderboard(2, variants=[imdn, rlfn], weights_dir=weights, data_root=datasets_dir,
                                datasets=["Set5"])
    by_name = {e.name: e for e in entries}
    assert set(by_name) == {"imdn_tiny", "rlfn_tiny"}
    row = by_name["imdn_tiny"]
    assert row.params == litesr.count_parameters(trained)
    assert row.macs == count_ops(trained, lr_size_for_output((720, 1280), 2)).total_macs
    assert row.published == {"Set5": (30.0, 0.9)} and row.weights == "imdn_tiny_x2.safetensors"
    psnr, ssim = row.measured["Set5"]
    assert 5 < psnr < 40 and 0 < ssim < 1  # random weights: a real but poor PSNR
    assert not by_name["rlfn_tiny"].measured

    text = to_markdown(entries, ["Set5"])
    assert text.count("\n") == 2 + len(entries) and "30.00/0.9000" in text
    rows = list(csv.reader(io.StringIO(to_csv(entries, ["Set5"]))))
    assert rows[0][:3] == ["model", "scale", "params (K)"] and len(rows) == 3
    assert rows[1][0] == "imdn_tiny" or rows[2][0] == "imdn_tiny"

    pytest.importorskip("matplotlib")
    written = write_leaderboard(entries, tmp_path / "out", datasets=["Set5"])
    assert {p.suffix for p in written} == {".md", ".csv", ".png", ".svg"}
    assert all(p.stat().st_size > 0 for p in written)
    assert (tmp_path / "out" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"


def test_a_checkpoint_of_another_configuration_gets_its_own_row(tmp_path, datasets_dir):
    imdn = _tiny("imdn_tiny", "imdn")
    weights = tmp_path / "w"
    wider = litesr.create_model("imdn", scale=2, nf=24, num_modules=1)
    save_safetensors(wider.state_dict(), weights / "small.safetensors")
    entries = build_leaderboard(2, variants=[imdn], weights_dir=weights, data_root=datasets_dir, datasets=["Set5"])
    assert [e.name for e in entries] == ["imdn_tiny", "imdn (small.safetensors)"]
    assert entries[1].params == litesr.count_parameters(wider) and entries[1].measured


def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys):
    from litesr.cli import main

    assert main(["leaderboard", "--scale", "2", "--models", "bsrn_s", "--no-eval", "-o", str(tmp_path)]) == 1
    assert "bsrn_s" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["leaderboard", "--scale", "2", "--models", "imdn", "--no-eval", "-o", str(tmp_path)]) == 1
    assert "matplotlib" in capsys.readouterr().err
    assert main(["leaderboard", "--scale", "2", "--models", "imdn,fsrcnn", "--no-eval", "--no-plot",
                 "-o", str(tmp_path)]) == 0
    assert (tmp_path / "leaderboard.csv").read_text().count("\n") == 3
