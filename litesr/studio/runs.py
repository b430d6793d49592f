"""Evaluation runs for the Compare and Rate pages: folders written by ``litesr eval --save-images DIR``.

Each folder holds ``litesr_eval.json`` (model, per-image PSNR/SSIM, where the HR images are) and the SR images under
``<dataset>/x<scale>/<name>.png``. Runs of the same dataset and scale form a *group*: one table row per image and one
column per run; the HR (mod-cropped, as measured) and bicubic images are made from the dataset on first use and cached
in the session folder. Every image is addressed by group, image name and condition, all checked against what the
runs list: nothing a client sends becomes a path.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DatasetError

INDEX = "litesr_eval.json"  # litesr.cli.eval.SAVED_RUN_INDEX
HR, BICUBIC = "HR", "bicubic"


@dataclass
class RunColumn:
    label: str
    images_dir: Path
    metrics: dict[str, tuple[float, float]]  # image -> (psnr, ssim)
    psnr: float
    ssim: float


@dataclass
class Group:
    key: str  # "Set5 x2"
    dataset: str
    scale: int
    hr_dir: Path
    lr_dir: Path | None
    lr_source: str
    images: list[str]
    runs: list[RunColumn] = field(default_factory=list)

    def conditions(self) -> list[str]:
        return [HR, BICUBIC, *(r.label for r in self.runs)]

    def to_json(self) -> dict:
        return {"key": self.key, "dataset": self.dataset, "scale": self.scale, "images": self.images,
                "conditions": self.conditions(),
                "runs": [{"label": r.label, "psnr": _num(r.psnr), "ssim": _num(r.ssim),
                          "metrics": {k: [_num(p), _num(s)] for k, (p, s) in r.metrics.items()}} for r in self.runs]}


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _float(x: object) -> float:
    try:
        return float(x)  # the index writes an infinite PSNR as "inf"
    except (TypeError, ValueError):
        return math.nan


def load_runs(folders: list[Path]) -> list[Group]:
    """The groups of these run folders; a folder without an index is a one-line error naming it."""
    groups: dict[str, Group] = {}
    labels: set[str] = {HR, BICUBIC}  # the built-in conditions: a run of the bicubic model gets its folder added
    for folder in folders:
        index = folder / INDEX
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{folder}: not a `litesr eval --save-images` folder (no {INDEX})") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{index}: cannot read ({exc})") from None
        label = str(data.get("model") or folder.name)
        if data.get("weights"):
            label = f"{label} ({Path(data['weights']).stem})"
        base, n = label, 2
        while label in labels:  # two runs of the same model: tell them apart by folder
            label = f"{base} [{folder.name}]" if n == 2 else f"{base} [{folder.name} {n}]"
            n += 1
        labels.add(label)
        for result in data.get("results", []):
            key = f"{result['dataset']} x{result['scale']}"
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(
                    key, result["dataset"], int(result["scale"]), Path(result["hr_dir"]),
                    Path(result["lr_dir"]) if result.get("lr_dir") else None, result.get("lr_source", "generate"),
                    [im["name"] for im in result["images"]])
            metrics = {im["name"]: (_float(im["psnr"]), _float(im["ssim"])) for im in result["images"]}
            group.runs.append(RunColumn(label, folder / result["images_dir"], metrics, _float(result["psnr"]),
                                        _float(result["ssim"])))
    return list(groups.values())


class RunImages:
    """PNG files of (group, image, condition), made once and cached under ``cache_dir``."""

    def __init__(self, groups: list[Group], cache_dir: Path) -> None:
        self.groups = {g.key: g for g in groups}
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._datasets: dict[str, object] = {}

    def group(self, key: str) -> Group:
        group = self.groups.get(key)
        if group is None:
            raise ConfigError(f"unknown run group {key!r}")
        return group

    def path(self, key: str, image: str, condition: str) -> Path:
        group = self.group(key)
        if image not in group.images:
            raise ConfigError(f"{key}: no image {image!r}")
        for run in group.runs:
            if run.label == condition:
                path = run.images_dir / f"{image}.png"
                if not path.is_file():
                    raise DatasetError(f"{path}: missing from its run folder")
                return path
        if condition not in (HR, BICUBIC):
            raise ConfigError(f"{key}: no condition {condition!r}")
        index = group.images.index(image)  # cached by position: image names never become file names
        target = self.cache_dir / f"group{list(self.groups).index(key)}" / f"{index}_{condition.lower()}.png"
        with self._lock:
            if not target.is_file():
                self._make(group, image, condition, target)
        return target

    def _make(self, group: Group, image: str, condition: str, target: Path) -> None:
        import torch

        from ..data.benchmark import open_dataset
        from ..evaluate import quantize_uint8
        from ..images import write_image
        from ..imresize import imresize

        data = self._datasets.get(group.key)
        if data is None:
            source = "replicate" if group.lr_source == "replicate" else "generate"
            data = open_dataset(group.hr_dir, group.scale, lr_source=source, lr_dir=group.lr_dir)
            self._datasets[group.key] = data
        item = next((i for i in data.images if i.name == image), None)  # type: ignore[attr-defined]
        if item is None:
            raise DatasetError(f"{group.hr_dir}: no HR image {image!r} any more")
        sample = data.load_sample(item)  # type: ignore[attr-defined]
        if condition == HR:
            pixels = sample.hr
        else:  # MATLAB bicubic of the very LR the models were given
            lr = torch.from_numpy(sample.lr).permute(2, 0, 1).float().div_(255.0)
            pixels = quantize_uint8(imresize(lr, scale=group.scale))
        write_image(target, pixels)
