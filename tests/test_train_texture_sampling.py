"""WBSR's Hierarchical Equalization Sampling (litesr's reading): the gradient score against scipy's Sobel, patch
scores against brute force, level shares that follow ``equalize``, crops at the drawn corner, and the training config
(``datasets.train.sampling``) with its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from strategy_helpers import Recorder, tiny_config

from litesr.data.texture_sampling import (
    LUMA,
    build_texture_sampler,
    gradient_magnitude,
    level_edges,
    parse_sampling,
    patch_gradient_scores,
)
from litesr.data.train import Pair, TrainPatches
from litesr.errors import ConfigError
from litesr.train import build_config, load_config


def _half_textured(seed: int, h: int = 64, w: int = 96) -> np.ndarray:
    """Flat grey except a noisy strip on the right: most patches are smooth, a few textured."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 120, np.uint8)
    img[:, w - 20:] = rng.integers(0, 256, (h, 20, 3))
    return img


def test_gradient_magnitude_is_scipy_sobel_of_the_luma() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (23, 31, 3)).astype(np.uint8)
    y = rgb.astype(np.float64) @ LUMA.astype(np.float64)
    gx = ndimage.sobel(y, axis=1, mode="nearest") / 8.0
    gy = ndimage.sobel(y, axis=0, mode="nearest") / 8.0
    np.testing.assert_allclose(gradient_magnitude(rgb), np.hypot(gx, gy), rtol=1e-4, atol=1e-3)


def test_patch_scores_are_window_means_with_a_flush_last_window() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (30, 41, 3)).astype(np.uint8)
    g = gradient_magnitude(rgb)
    tops, lefts, scores = patch_gradient_scores(rgb, 12, 6)
    assert sorted(set(tops)) == [0, 6, 12, 18] and sorted(set(lefts)) == [0, 6, 12, 18, 24, 29]
    brute = [g[t:t + 12, c:c + 12].mean() for t, c in zip(tops, lefts)]
    np.testing.assert_allclose(scores, brute, rtol=1e-5)
    assert len(patch_gradient_scores(rgb[:10], 12, 6)[2]) == 0  # smaller than a patch: no candidate


def test_equalize_sets_the_share_of_each_level() -> None:
    images = [_half_textured(i) for i in range(3)]
    natural = build_texture_sampler(lambda i: images[i], 3, 16, levels=3, equalize=0.0)
    equal = build_texture_sampler(lambda i: images[i], 3, 16, levels=3, equalize=1.0)
    counts = natural.counts
    assert counts.sum() == len(natural.scores) and counts[0] > 2 * counts[-1]  # mostly smooth candidates
    np.testing.assert_allclose(natural.probability, counts / counts.sum())
    nonempty = counts > 0
    np.testing.assert_allclose(equal.probability[nonempty], 1.0 / nonempty.sum())
    rng = np.random.default_rng(0)
    drawn = [equal.draw(rng) for _ in range(3000)]
    scores = np.array([patch_gradient_scores(images[i][t:t + 16, c:c + 16], 16, 16)[2][0] for i, t, c in drawn])
    levels = np.bincount(np.digitize(scores, equal.edges), minlength=3) / len(drawn)
    # jittered crops move a little across the edges; the textured share is far above its natural one
    assert levels[-1] > 0.2 > counts[-1] / counts.sum()
    for image, top, left in drawn[:200]:
        h, w = images[image].shape[:2]
        assert 0 <= top <= h - 16 and 0 <= left <= w - 16


def test_level_edges_are_equally_spaced_between_percentiles() -> None:
    scores = np.arange(101, dtype=np.float32)
    np.testing.assert_allclose(level_edges(scores, 4), [25.5, 50.0, 74.5], rtol=1e-5)
    assert len(level_edges(scores, 1)) == 0


def test_train_patches_crop_at_the_drawn_corner(tmp_path: Path) -> None:
    from PIL import Image

    hr = np.random.default_rng(2).integers(0, 256, (64, 96, 3)).astype(np.uint8)
    lr = hr[::2, ::2].copy()
    Image.fromarray(hr).save(tmp_path / "a.png")
    Image.fromarray(lr).save(tmp_path / "a_lr.png")
    patches = TrainPatches([Pair(tmp_path / "a.png", tmp_path / "a_lr.png")], 2, 16, flip=False, rot90=False)
    sampler = patches.use_texture_sampling(levels=2)
    image, top, left = sampler.draw(np.random.default_rng([5, 0, 0]))
    sample = patches[(0, (5, 0, 0))]
    expected = lr[top:top + 8, left:left + 8].transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(sample["lr"].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(sample["hr"].numpy(), hr[2 * top:2 * top + 16, 2 * left:2 * left + 16]
                               .transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_training_with_hes_runs_and_reports_levels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tiny_config(tmp_path, train={"iterations": 3, "batch_size": 2, "ema": {"enabled": False},
                                       "losses": [{"type": "bdloss", "floor": 0.2}]})
    raw["datasets"]["train"]["sampling"] = {"type": "hes", "levels": 3}
    trainer = Recorder(build_config(raw))
    assert trainer.train_set.sampler is not None and len(trainer.train_set.sampler.probability) == 3
    trainer.fit()
    assert len(trainer.seen) == 3 and all(np.isfinite(s["losses"]["loss"]) for s in trainer.seen)
    assert "HES:" in capsys.readouterr().out
    trainer.close()


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "hes", "levls": 3}, "did you mean 'levels'"),
    ({"type": "stratified"}, "unknown sampling 'stratified'"),
    ({"type": "hes", "equalize": 2}, "equalize in [0, 1]"),
    (3, "must be 'uniform', 'hes' or a mapping"),
])
def test_bad_sampling_config_names_the_key(tmp_path: Path, spec: object, message: str) -> None:
    raw = tiny_config(tmp_path)
    raw["datasets"]["train"]["sampling"] = spec
    with pytest.raises(ConfigError, match="datasets.train.sampling") as info:
        build_config(raw)
    assert message in str(info.value)


def test_uniform_is_the_default_and_parses_to_none() -> None:
    assert parse_sampling("uniform") is None and parse_sampling(None) is None
    assert parse_sampling("hes") == {"levels": 4, "equalize": 1.0}


def test_a_sampling_name_on_the_command_line_replaces_the_configs_mapping() -> None:
    # arm_fsrcnn_wbsr_x4_cpu.yml sets sampling: {type: hes, ...}; its baseline is run with sampling=uniform.
    cfg = load_config("arm_fsrcnn_wbsr_x4_cpu", overrides=["datasets.train.sampling=uniform"])
    assert cfg["datasets"]["train"]["sampling"] == "uniform"
    cfg = load_config("arm_fsrcnn_wbsr_x4_cpu", overrides=["datasets.train.sampling=hes"])
    assert cfg["datasets"]["train"]["sampling"] == "hes"
    with pytest.raises(ConfigError, match="datasets.train.sampling"):
        load_config("arm_fsrcnn_wbsr_x4_cpu", overrides=["datasets.train.sampling=stratified"])
