"""ARM (ARM-FSRCNN, ARM-CARN, ARM-SRResNet): the same outputs as the official supernets (chenbong/ARM-Net, read from
outside the repo) at full and reduced width on shared random weights, the official parameter counts, detection of
the official checkpoints, the official patch choice, and budget routing that spends fewer MACs for smaller budgets."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_official_parity import MIRRORS, official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs import _arm_ops as ops
from litesr.dynamic import mac_report

REPO = "chenbong/ARM-Net"
FILES = {f"models/archs/{n}.py": f"models/archs/{n}.py"
         for n in ("arch_util", "FSRCNN_arch", "CARN_arch", "SRResNet_arch")}
TOL = 1e-5


@pytest.fixture
def official(tmp_path: Path):
    with official_modules(tmp_path, REPO, FILES):
        yield {n: importlib.import_module(f"models.archs.{n}") for n in ("FSRCNN_arch", "CARN_arch", "SRResNet_arch")}


def _official_net(official, arch: str, **cfg):  # noqa: ANN001, ANN202 - the official classes
    if arch == "arm_fsrcnn":
        return official["FSRCNN_arch"].US_FSRCNN_net(3, 4, nf=cfg["nf"], s=cfg["s"], m=cfg["m"])
    if arch == "arm_carn":
        return official["CARN_arch"].US_CARN_M(3, 3, nf=cfg["nf"], scale=cfg["scale"], group=cfg["group"])
    return official["SRResNet_arch"].US_MSRResNet(3, 3, nf=cfg["nf"], nb=cfg["nb"], upscale=cfg["scale"])


CASES = [("arm_fsrcnn", {"scale": 4, "nf": 56, "s": 12, "m": 4}, (0, 16, 36, 56)),
         ("arm_carn", {"scale": 4, "nf": 64, "group": 4}, (0, 36, 52, 64)),
         ("arm_carn", {"scale": 3, "nf": 32, "group": 4}, (0, 16, 24, 32)),
         ("arm_srresnet", {"scale": 4, "nf": 16, "nb": 2}, (0, 8, 12, 16)),
         ("arm_srresnet", {"scale": 2, "nf": 16, "nb": 2}, (0, 8, 12, 16))]


@pytest.mark.parametrize(("arch", "cfg", "widths"), CASES)
def test_matches_official_at_every_width(official, arch: str, cfg: dict, widths: tuple[int, ...]) -> None:
    ours = litesr.create_model(arch, widths=widths, **cfg).eval()
    ours.load_state_dict(random_state(ours, seed=len(widths) + cfg["scale"], std=0.1))
    reference = _official_net(official, arch, **cfg).eval()
    reference.load_state_dict(ours.state_dict())
    ours, reference = ours.double(), reference.double()
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for width in widths[1:]:
        reference.apply(lambda m, w=width: setattr(m, "width_mult", w / widths[-1]))
        ours.set_width(width)
        with torch.no_grad():
            want, got = reference(x), ours(x)
        assert float((want - x.mean()).abs().max()) > 1e-3
        assert float((got - want).abs().max()) <= TOL, (arch, width)


def test_parameter_counts(official) -> None:
    """Official code at the options files' configs; paper Table 1: 25K, 295K, 1.5M."""
    counts = {n: parameter_count_on_meta(n, 4) for n in ("arm_fsrcnn", "arm_carn", "arm_srresnet")}
    assert counts == {"arm_fsrcnn": 24_515, "arm_carn": 294_171, "arm_srresnet": 1_517_571}
    configs = {"arm_fsrcnn": {"nf": 56, "s": 12, "m": 4}, "arm_carn": {"nf": 64, "scale": 4, "group": 4},
               "arm_srresnet": {"nf": 64, "nb": 16, "scale": 4}}
    for name, cfg in configs.items():
        reference = _official_net(official, name, **cfg)
        assert sum(p.numel() for p in reference.parameters()) == counts[name]


def test_variants_detect_as_themselves() -> None:
    assert {"arm_fsrcnn"} <= set(check_variants_detect_as_themselves("arm_fsrcnn"))
    assert {"arm_carn"} <= set(check_variants_detect_as_themselves("arm_carn"))
    assert {"arm_srresnet"} <= set(check_variants_detect_as_themselves("arm_srresnet"))


def test_plain_fsrcnn_and_carn_m_are_not_taken_for_arm() -> None:
    for name in ("fsrcnn", "carn_m", "pcsr_fsrcnn", "msrresnet"):
        with torch.device("meta"):
            sd = litesr.create_model(name, scale=4).state_dict()
        assert {m.arch for m in litesr.detect_architecture(sd)} == {litesr.registry.get_variant(name).arch}


def _official_checkpoint(name: str, tmp_path: Path) -> Path:
    """The official ``ckpt/<name>`` from the mirror (a git directory), written to tmp_path; skips when absent."""
    git_dir = MIRRORS / REPO.replace("/", "+") / "repo"
    target = tmp_path / name
    done = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"HEAD:ckpt/{name}"], capture_output=True)
    if done.returncode != 0 or len(done.stdout) < 1000:
        pytest.skip(f"official checkpoint ckpt/{name} of {REPO} not found under {MIRRORS}")
    target.write_bytes(done.stdout)
    return target


@pytest.mark.parametrize(("stem", "arch"), [("arm-fsrcnn", "arm_fsrcnn"), ("arm-carn", "arm_carn")])
def test_official_checkpoint_loads_by_detection(stem: str, arch: str, tmp_path: Path) -> None:
    path = _official_checkpoint(f"{stem}.pth", tmp_path)
    model = litesr.load_model(path)
    assert litesr.describe(model).arch == arch and litesr.describe(model).scale == 4
    model.load_lookup_table(_official_checkpoint(f"{stem}.state", tmp_path))
    assert model.table is not None and model.table.psnr.shape == (4, 30)
    # The official cost_list (FLOPs on a 32x32 patch, 0 for bicubic) rises with the width, as litesr's MACs.
    ours, theirs = model.subnet_macs(32, 32), model.table.official_costs
    assert theirs[0] == 0 and list(np.argsort(theirs)) == list(np.argsort(ours)) == [0, 1, 2, 3]


def _trained_like(arch: str = "arm_fsrcnn"):  # noqa: ANN202
    """A model with a synthetic table in which wider subnets gain more on edgy patches (as the official ones)."""
    model = litesr.create_model(arch, nf=16, s=8, m=1, widths=(0, 4, 8, 16)).eval()
    centers = np.tile(np.linspace(2, 200, 30), (4, 1))
    gain = np.array([0.0, 0.5, 0.8, 1.0])[:, None] * np.linspace(0.1, 2.0, 30)[None]
    model.table = ops.LookupTable(centers, 40 - np.linspace(0, 20, 30)[None] + gain)
    return model


def test_budget_routing_spends_less_for_smaller_budgets() -> None:
    model = _trained_like()
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    x[..., :35, :] = x[..., :35, :].mean()  # a flat half: cheap patches to route away first
    spent, full = [], None
    for budget in (0.0, 0.2, 0.5, 0.8, 1.0):
        model.set_budget(budget)
        report = mac_report(model, x)
        full = report.full_macs
        planned = report.routing["budget_macs"]
        assert planned <= budget * model.subnet_macs(32, 32)[-1] * report.routing["patches"] + 1
        spent.append(report.spent_macs)
    assert spent == sorted(spent) and spent[0] < spent[2] < spent[-1] <= full
    assert spent[0] < 0.01 * full  # all bicubic: only the edge scores and the resampling
    model.set_budget("0.5G")
    assert model(x).shape == (1, 3, 280, 360)


def test_official_choice_rules() -> None:
    pred = np.array([[30.0, 31.0, 31.5, 31.6], [40.0, 39.0, 39.5, 39.8]])
    costs = np.array([0.0, 1.0, 2.0, 3.0])
    assert ops.choose_official(pred, costs, "best").tolist() == [3, 0]
    assert ops.choose_official(pred, costs, 2).tolist() == [2, 2]
    # k = 4: 4 * psnr - cost / 3 -> patch 0: [120, 123.67, 125.33, 125.4] -> 3
    assert ops.choose_official(pred, costs, 4.0).tolist() == [3, 0]
    choice, _ = ops.choose_for_budget(pred, costs, budget_macs=2.0)
    assert costs[choice].sum() <= 2.0 and choice[1] == 0


def test_edge_score_is_opencv_laplacian() -> None:
    """Against cv2 (the official ``util.laplacian``) when installed, else a hand-computed 3x3 case."""
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(3))
    got = ops.edge_scores(x)
    try:
        import cv2
    except ImportError:
        flat = torch.full((1, 3, 4, 4), 0.5)
        flat[0, :, 1, 1] = 1.0  # one bright pixel (gray 128 -> 255) next to the border
        # |Laplacian| saturates to 255 at it and at (0,0), (0,2), (2,0), whose reflect-101 diagonals reach it 4, 2 and
        # 2 times; (2, 2) sees it once: 2 * (255 + 3 * 128) - 8 * 128 = 254; every other pixel is flat.
        assert float(ops.edge_scores(flat)[0]) == pytest.approx((4 * 255 + 254) / 16)
        return
    for i in range(2):
        img = (x[i].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()[:, :, ::-1]
        lap = cv2.convertScaleAbs(cv2.Laplacian(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY),
                                                cv2.CV_16S, ksize=3))
        assert float(got[i]) == pytest.approx(float(lap.mean()), abs=1e-9)


def test_routing_without_table_and_bad_budgets_are_refused() -> None:
    model = litesr.create_model("arm_fsrcnn", nf=8, s=4, m=1)
    model.set_budget(0.5)
    with pytest.raises(litesr.errors.ConfigError, match="lookup table"):
        model(torch.rand(1, 3, 40, 40))
    for bad in ("1.5", "-0.1", "abc", "150%"):
        with pytest.raises(litesr.errors.ConfigError, match="--budget"):
            model.set_budget(bad)


def test_cli_budget_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from litesr.cli import main

    image, out = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    weights = tmp_path / "arm.pth"  # an ARM checkpoint without its .state (the lookup table) beside it
    torch.save(litesr.create_model("arm_fsrcnn").state_dict(), weights)
    capsys.readouterr()
    for args, words in ((["--model", "bicubic", "--scale", "4", "--budget", "0.5"], ("bicubic", "ARM")),
                        (["--model", "arm_fsrcnn", "--budget", "2"], ("'2'", "fraction")),
                        (["--weights", str(weights), "--budget", "0.5"], ("lookup table", "arm.state"))):
        assert main(["upscale", str(image), *args, "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--budget" in err and all(w in err for w in words), err
        assert not out.exists()
    assert main(["profile", "--model", "fsrcnn", "--scale", "4", "--input", str(image), "--budget", "0.5"]) == 1
    assert "not an any-time ARM model" in capsys.readouterr().err


def test_gradient_projection_routes_flat_patches_to_cheap_subnets() -> None:
    from litesr.archs.arm import gradient_projection_edges

    model = litesr.create_model("arm_fsrcnn", scale=4).eval()  # random weights, no lookup table
    x = torch.rand(1, 3, 64, 120, generator=torch.Generator().manual_seed(0))
    x[..., :, :60] = 0.5  # flat left half
    edges = gradient_projection_edges(model, [(x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)])
    assert len(edges) == 3 and np.all(np.diff(edges) >= 0)
    model.set_gradient_projection(edges)
    report = mac_report(model, x)
    routing = report.routing
    assert routing["width_0"] > 0 and routing["width_56"] > 0  # flat patches bicubic, noisy ones full width
    assert report.spent_macs < 0.8 * report.full_macs
    model.set_gradient_projection([1e9])  # one edge: two levels, the narrower is the 36-channel subnet
    with torch.no_grad():
        model(x)
    assert model.last_routing["width_36"] == model.last_routing["patches"]
    with pytest.raises(litesr.errors.ConfigError, match="ascending edges"):
        model.set_gradient_projection([3.0, 1.0])
    model.set_budget(0.5)
    assert model.projection is None


def test_a_subnet_index_sends_every_patch_to_that_width_without_a_table() -> None:
    """set_eta(index): the official fixed-subnet choice, the control row of benchmarks/arm_budget_set5.py."""
    model = litesr.create_model("arm_fsrcnn", scale=4).eval()  # random weights, no lookup table
    x = torch.rand(1, 3, 60, 70, generator=torch.Generator().manual_seed(1))
    x[..., :, :30] = 0.5  # flat and textured patches both present
    for index, width in enumerate(model.widths):
        model.set_eta(index)
        with torch.no_grad():
            model(x)
        assert model.last_routing[f"width_{width}"] == model.last_routing["patches"] > 1, model.last_routing
    model.set_eta(len(model.widths))
    with pytest.raises(litesr.errors.ConfigError, match="subnet index"), torch.no_grad():
        model(x)


def test_cli_gradient_projection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from PIL import Image

    from litesr.cli import main
    from litesr.data.train import make_synthetic_set

    rng = np.random.default_rng(0)
    picture = np.full((48, 80, 3), 128, np.uint8)
    picture[:, 40:] = rng.integers(0, 256, (48, 40, 3))  # flat left, noisy right
    image, out, report = tmp_path / "in.png", tmp_path / "out.png", tmp_path / "r.json"
    Image.fromarray(picture).save(image)
    weights = tmp_path / "arm.pth"  # no lookup table beside it: projection needs none
    torch.save(litesr.create_model("arm_fsrcnn").state_dict(), weights)
    train_hr = make_synthetic_set(tmp_path / "hr", count=3, size=160, seed=1)
    assert main(["upscale", str(image), "--weights", str(weights), "--gradient-projection", f"{train_hr}:4",
                 "-o", str(out)]) == 0
    assert Image.open(out).size == (320, 192)
    assert main(["profile", "--weights", str(weights), "--input", str(image), "--gradient-projection", "0.5,1e9",
                 "--json", str(report)]) == 0
    routing = json.loads(report.read_text())["routing"]
    # two edges: three bands on the three subnets; flat patches (score 0) at 16 channels, the rest at 36, none above
    assert routing["width_0"] == 0 and routing["width_16"] > 0 and routing["width_36"] > 0 and routing["width_56"] == 0
    capsys.readouterr()
    for args, words in ((["--gradient-projection", "nowhere"], ("neither comma-separated edges",)),
                        (["--gradient-projection", "3,1"], ("ascending edges",)),
                        (["--gradient-projection", "1", "--budget", "0.5"], ("two routing rules",))):
        out.unlink(missing_ok=True)
        assert main(["upscale", str(image), "--weights", str(weights), *args, "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
        assert not out.exists()
    assert main(["upscale", str(image), "--model", "bicubic", "--scale", "4", "--gradient-projection", "1",
                 "-o", str(out)]) == 1
    assert "not an ARM supernet" in capsys.readouterr().err
