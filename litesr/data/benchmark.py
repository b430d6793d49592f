"""Evaluation datasets (Set5, Set14, B100, Urban100, Manga109, DIV2K valid ...) in the layouts they are shipped in.

A dataset is a folder of HR images, either ``<Set>/HR/`` (EDSR/SwinIR benchmark layout), ``<Set>/GTmod12/`` (BasicSR),
``<Set>/<name>_HR/`` (DIV2K) or the folder itself. It is named by path (``path/to/Set5``) or by name under a data root
(``--data-root DIR --dataset Set5``; the root defaults to ``$LITESR_DATA_ROOT``, else ``./datasets``).

LR images come from one of:

- ``generate`` (the papers' protocol, default): MATLAB ``imresize(modcrop(hr, s), 1/s, 'bicubic')`` on uint8, made
  on the fly (:func:`litesr.imresize.bicubic_downsample_uint8`, symmetric borders);
- ``given``: files next to HR, ``LR_bicubic/X{s}/<name>x{s}.png`` (EDSR/SwinIR naming) or ``<name>.png``, or the
  DIV2K ``<name>_LR_bicubic/X{s}`` and BasicSR ``LRbicx{s}`` folders, or an explicit ``lr_dir``;
- ``replicate``: the SelfExSR files in ``LR_bicubic_replicate/X{s}`` when present, otherwise generated with the
  replicate border (the two are identical bit for bit).

Images load as uint8 RGB (H, W, 3): gray images are replicated to three channels (as the MATLAB test scripts do, so
their Y is computed from three equal channels); 16-bit files are reduced to 8 bits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..imresize import Border, bicubic_downsample_uint8, modcrop
from .files import IMAGE_SUFFIXES, list_images, read_rgb_uint8, read_uint8

LR_SOURCES = ("generate", "given", "replicate")
DATA_ROOT_ENV = "LITESR_DATA_ROOT"

# Other names the same benchmark goes by, all lower case.
_ALIASES = {
    "b100": ("bsd100", "bsds100"),
    "bsd100": ("b100", "bsds100"),
    "bsds100": ("b100", "bsd100"),
    "urban100": ("urban",),
    "manga109": ("manga",),
}
# Folders under a dataset that hold its HR images, in order of preference.
_HR_FOLDERS = ("HR", "hr", "GTmod12", "GT", "gt")
# Sub-folders of a data root that may hold the benchmark sets (EDSR's ``benchmark/``, SwinIR's ``testsets/``).
_ROOT_SUBFOLDERS = ("", "benchmark", "testsets", "test")


@dataclass(frozen=True)
class BenchmarkImage:
    """One test image: its name (file stem), HR file and LR file (None when LR is generated)."""

    name: str
    hr_path: Path
    lr_path: Path | None = None


@dataclass
class BenchmarkDataset:
    """The images of one evaluation set at one scale, and where their LR comes from."""

    name: str
    scale: int
    hr_dir: Path
    images: list[BenchmarkImage]
    lr_source: str = "generate"
    lr_dir: Path | None = None
    # Border rule of generated LR (symmetric: MATLAB imresize; replicate: SelfExSR files).
    border: Border = "symmetric"

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[BenchmarkImage]:
        return iter(self.images)

    def describe(self) -> str:
        """Where the LR comes from, in words (for tables and logs)."""
        if self.lr_dir is not None:
            return f"files {self.lr_dir.parent.name}/{self.lr_dir.name}"
        return f"MATLAB bicubic, {self.border}"

    def load(self, image: BenchmarkImage) -> tuple[np.ndarray, np.ndarray]:
        """(HR mod-cropped to the scale, LR), both uint8 (H, W, 3); given LR is checked to be HR size / scale."""
        sample = self.load_sample(image)
        return sample.hr, sample.lr

    def load_sample(self, image: BenchmarkImage) -> Sample:
        """:meth:`load`, and whether the HR file is single-channel gray."""
        hr_full, gray = read_uint8(image.hr_path)
        hr = modcrop(hr_full, self.scale)
        if hr.shape[0] == 0 or hr.shape[1] == 0:
            raise DatasetError(
                f"{image.hr_path}: image is {hr_full.shape[1]}x{hr_full.shape[0]}, smaller than the scale x{self.scale}"
            )
        if image.lr_path is None:
            return Sample(hr, bicubic_downsample_uint8(hr, self.scale, self.border), gray)
        lr = read_rgb_uint8(image.lr_path)
        want_h, want_w = hr.shape[0] // self.scale, hr.shape[1] // self.scale
        if lr.shape[:2] != (want_h, want_w):
            raise DatasetError(
                f"{image.lr_path}: LR image is {lr.shape[1]}x{lr.shape[0]}, expected {want_w}x{want_h} "
                f"(HR {image.hr_path.name} is {hr_full.shape[1]}x{hr_full.shape[0]}, x{self.scale})"
            )
        return Sample(hr, lr, gray)


@dataclass(frozen=True)
class Sample:
    """One loaded test pair: uint8 (H, W, 3) HR (mod-cropped) and LR, and whether the HR file is gray."""

    hr: np.ndarray
    lr: np.ndarray
    gray: bool


def default_data_root() -> Path:
    """``$LITESR_DATA_ROOT``, else ``./datasets``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "datasets")


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []


def find_dataset_dir(dataset: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """The folder of ``dataset``: an existing path as is, else a name looked up (case-insensitively) under ``root``."""
    path = Path(dataset)
    if path.is_dir():
        return path
    if path.exists():
        raise DatasetError(f"{path}: is a file, not a dataset folder")
    text = str(dataset)
    if os.sep in text or "/" in text or text.startswith("."):
        raise DatasetError(f"{path}: no such dataset folder")
    root_dir = Path(root) if root is not None else default_data_root()
    if not root_dir.is_dir():
        raise DatasetError(
            f"{root_dir}: data root not found, so dataset {text!r} cannot be looked up "
            f"(give --data-root DIR, set {DATA_ROOT_ENV}, or pass the dataset's path)"
        )
    wanted = {text.lower(), *_ALIASES.get(text.lower(), ())}
    available: list[str] = []
    for sub in _ROOT_SUBFOLDERS:
        base = root_dir / sub if sub else root_dir
        for candidate in _subfolders(base):
            if candidate.name.lower() in wanted:
                return candidate
            if not sub:
                available.append(candidate.name)
    listing = ", ".join(available) if available else "none"
    raise DatasetError(f"{root_dir}: no dataset named {text!r} (folders there: {listing})")


def find_hr_dir(dataset_dir: Path) -> Path:
    """The HR folder of a dataset folder: ``HR``/``GTmod12``/``*_HR`` inside it, or the folder itself."""
    for name in _HR_FOLDERS:
        if (dataset_dir / name).is_dir():
            return dataset_dir / name
    if list_images(dataset_dir):
        return dataset_dir
    suffixed = [p for p in _subfolders(dataset_dir) if p.name.endswith("_HR")]
    if len(suffixed) > 1:  # DIV2K: DIV2K_train_HR and DIV2K_valid_HR; evaluation means the validation split
        suffixed = [p for p in suffixed if "valid" in p.name.lower()] or suffixed
    if len(suffixed) == 1:
        return suffixed[0]
    if suffixed:
        names = ", ".join(p.name for p in suffixed)
        raise DatasetError(f"{dataset_dir}: several HR folders ({names}); pass the one to use as the dataset path")
    raise DatasetError(f"{dataset_dir}: no images and no HR folder ({'/'.join(_HR_FOLDERS)}) in it")


def _given_lr_dirs(dataset_dir: Path, hr_dir: Path, scale: int, replicate: bool) -> list[Path]:
    """Candidate LR folders of a layout, most specific first."""
    if replicate:
        names = [f"LR_bicubic_replicate/X{scale}", f"LR_bicubic_replicate/x{scale}"]
        return [dataset_dir / n for n in names]
    candidates = [dataset_dir / f"LR_bicubic/X{scale}", dataset_dir / f"LR_bicubic/x{scale}",
                  dataset_dir / f"LRbicx{scale}", dataset_dir / f"LR_bicubic_X{scale}"]
    if hr_dir.name.endswith("_HR"):  # DIV2K: X_HR next to X_LR_bicubic/X2
        candidates.append(hr_dir.parent / f"{hr_dir.name[:-3]}_LR_bicubic" / f"X{scale}")
    return candidates


def _match_lr(hr_files: list[Path], lr_dir: Path, scale: int) -> list[BenchmarkImage]:
    """Pair each HR file with ``<stem>x{s}.*`` or ``<stem>.*`` in ``lr_dir``."""
    by_stem: dict[str, Path] = {}
    for p in list_images(lr_dir):
        by_stem.setdefault(p.stem, p)
    items = []
    for hr in hr_files:
        names = (f"{hr.stem}x{scale}", hr.stem, f"{hr.stem}_x{scale}", f"{hr.stem}X{scale}")
        match = next((by_stem[n] for n in names if n in by_stem), None)
        if match is None:
            raise DatasetError(
                f"{lr_dir}: no LR image for {hr.name} (looked for {names[0]}.png or {names[1]}.png and other suffixes)"
            )
        items.append(BenchmarkImage(hr.stem, hr, match))
    return items


def open_dataset(
    dataset: str | os.PathLike,
    scale: int,
    *,
    root: str | os.PathLike | None = None,
    lr_source: str = "generate",
    lr_dir: str | os.PathLike | None = None,
) -> BenchmarkDataset:
    """Find a dataset (a name under ``root`` or a path) and pair its HR images with LR for ``scale``.

    ``lr_dir`` (an LR folder, or one holding ``X{scale}``) implies given LR files.
    """
    if lr_source not in LR_SOURCES:
        raise DatasetError(f"unknown LR source {lr_source!r} (use {', '.join(LR_SOURCES)})")
    if int(scale) != scale or scale < 1:
        raise DatasetError(f"scale must be a positive integer, not {scale}")
    scale = int(scale)
    dataset_dir = find_dataset_dir(dataset, root)
    hr_dir = find_hr_dir(dataset_dir)
    hr_files = list_images(hr_dir)
    if not hr_files:
        raise DatasetError(f"{hr_dir}: no images ({', '.join(IMAGE_SUFFIXES[:5])} ...)")
    resolved = dataset_dir.resolve()
    # A path to the HR folder itself (the trainer's val_dir: .../Set5/HR) is named after the set.
    name = resolved.parent.name if resolved.name in _HR_FOLDERS else resolved.name

    if lr_dir is not None:
        folder = Path(lr_dir)
        if (folder / f"X{scale}").is_dir():
            folder = folder / f"X{scale}"
        if not folder.is_dir():
            raise DatasetError(f"{folder}: no such LR folder")
        return BenchmarkDataset(name, scale, hr_dir, _match_lr(hr_files, folder, scale), "given", folder)

    if lr_source == "generate":
        return BenchmarkDataset(name, scale, hr_dir, [BenchmarkImage(p.stem, p) for p in hr_files])

    replicate = lr_source == "replicate"
    folder = next((d for d in _given_lr_dirs(dataset_dir, hr_dir, scale, replicate) if d.is_dir()), None)
    if folder is None and replicate:
        items = [BenchmarkImage(p.stem, p) for p in hr_files]
        return BenchmarkDataset(name, scale, hr_dir, items, "replicate", None, "replicate")
    if folder is None:
        raise DatasetError(
            f"{dataset_dir}: no LR folder for x{scale} (looked for LR_bicubic/X{scale}, LRbicx{scale}); "
            "use --lr-source generate to make LR from HR"
        )
    return BenchmarkDataset(name, scale, hr_dir, _match_lr(hr_files, folder, scale), lr_source, folder,
                            "replicate" if replicate else "symmetric")
