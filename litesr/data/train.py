"""Training data: HR folders (LR made once with litesr's MATLAB bicubic and cached) or paired HR/LR folders, random
aligned crops, flips and 90-degree rotations, and a resumable, shardable sample stream.

Every sample's randomness comes from its key ``(seed, epoch, position)`` rather than from worker state, so the same
run draws the same patches whatever the number of DataLoader workers or processes, and a resumed run picks up the
stream exactly where it stopped (the stream position is just ``iteration * batch_size``).
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ..errors import DatasetError
from ..fileio import atomic_output
from .degradations import Degradation
from .files import IMAGE_SUFFIXES, find_images, read_rgb_uint8
from .texture_sampling import TextureSampler, build_texture_sampler


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None


def div2k_lr_dir(hr_dir: Path, scale: int) -> Path | None:
    """The LR folder of a DIV2K/Flickr2K-style layout: ``X_HR`` -> ``X_LR_bicubic/X{scale}`` (None when absent)."""
    name = hr_dir.name
    if not name.endswith("_HR"):
        return None
    candidate = hr_dir.parent / f"{name[:-3]}_LR_bicubic" / f"X{scale}"
    return candidate if candidate.is_dir() else None


def match_lr_file(hr_path: Path, lr_dir: Path, scale: int) -> Path:
    """The LR file of ``hr_path`` in ``lr_dir``: ``0001x2.png`` (DIV2K) or ``0001.png``, optionally under ``X2/``."""
    stem = hr_path.stem
    folders = [lr_dir / f"X{scale}", lr_dir] if (lr_dir / f"X{scale}").is_dir() else [lr_dir]
    for folder in folders:
        for name in (f"{stem}x{scale}", stem):
            for suffix in (hr_path.suffix, *IMAGE_SUFFIXES):
                candidate = folder / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
    raise DatasetError(f"{lr_dir}: no LR image for {hr_path.name} (looked for {stem}x{scale}.* and {stem}.*)")


class LRCache:
    """LR images made from HR files with litesr's MATLAB bicubic, computed once and kept as .npy files.

    The key is the HR file's absolute path, size and modification time plus the scale, so an edited HR image gets a
    new LR image and two runs on the same data share the work.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path_for(self, hr_path: Path, scale: int) -> Path:
        stat = hr_path.stat()
        ident = f"{hr_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|x{scale}|matlab-bicubic-symmetric"
        digest = hashlib.sha1(ident.encode()).hexdigest()[:20]
        return self.folder / f"x{scale}" / f"{hr_path.stem}-{digest}.npy"

    def get(self, hr_path: Path, scale: int, hr: np.ndarray | None = None) -> np.ndarray:
        path = self.path_for(hr_path, scale)
        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass  # a damaged cache file is recomputed below
        from ..imresize import bicubic_downsample_uint8

        lr = bicubic_downsample_uint8(read_rgb_uint8(hr_path) if hr is None else hr, scale)
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.save(f, lr)
        return lr


@dataclass(frozen=True)
class Pair:
    hr: Path
    lr: Path | None  # None: made from HR through the LR cache


def collect_pairs(
    hr_dirs: Sequence[str | os.PathLike], lr_dirs: Sequence[str | os.PathLike | None], scale: int
) -> list[Pair]:
    """HR files of every folder with their LR partner: ``lr_dir`` None makes LR with bicubic, ``"auto"`` finds the
    DIV2K-style sibling folder (``DIV2K_train_LR_bicubic/X2``), a path pairs by name."""
    pairs: list[Pair] = []
    for hr_dir, lr_dir in zip(hr_dirs, lr_dirs):
        hr_dir = Path(hr_dir)
        hr_files = find_images(hr_dir)
        if lr_dir == "auto":
            found = div2k_lr_dir(hr_dir, scale)
            if found is None:
                raise DatasetError(f"{hr_dir}: lr_dir is 'auto' but there is no {hr_dir.name[:-3]}_LR_bicubic/"
                                   f"X{scale} beside it; give lr_dir, or leave it empty to make LR with bicubic")
            lr_dir = found
        if lr_dir is None:
            pairs += [Pair(p, None) for p in hr_files]
        else:
            lr_dir = Path(lr_dir)
            if not lr_dir.is_dir():
                raise DatasetError(f"{lr_dir}: no such LR folder")
            pairs += [Pair(p, match_lr_file(p, lr_dir, scale)) for p in hr_files]
    return pairs


def augment(
    lr: np.ndarray, hr: np.ndarray, rng: np.random.Generator, flip: bool, rot90: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal flip, vertical flip and transpose (the 8 dihedral transforms), applied alike to LR and HR."""
    hflip, vflip, transpose = rng.random(3) < 0.5
    if flip and hflip:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if flip and vflip:
        lr, hr = lr[::-1], hr[::-1]
    if rot90 and transpose:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


def to_tensor(img: np.ndarray) -> Tensor:
    """(H, W, C) uint8 -> (C, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


SampleKey = tuple[int, int, int]  # (seed, epoch, position in the epoch)


class TrainPatches(Dataset):
    """Random aligned (LR, HR) patches; ``len`` is ``images * data_repeat``.

    Index it with ``(index, key)`` pairs from :class:`SampleStream` (the key seeds crop and augmentation) or with a
    plain index (seeded by the index).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        scale: int,
        patch_size: int,
        *,
        data_repeat: int = 1,
        flip: bool = True,
        rot90: bool = True,
        preload: bool = False,
        cache_dir: str | os.PathLike | None = None,
        degradation: Degradation | None = None,
    ) -> None:
        if degradation is not None and degradation.scale != scale:
            raise DatasetError(f"the degradation is built for x{degradation.scale}, the training set for x{scale}")
        self.degradation = degradation
        if patch_size % scale:
            raise DatasetError(f"patch_size {patch_size} (HR) is not a multiple of the scale x{scale}")
        if not pairs:
            raise DatasetError("training set is empty")
        self.pairs = list(pairs)
        self.scale = scale
        self.patch_size = patch_size
        self.data_repeat = max(1, int(data_repeat))
        self.flip, self.rot90 = flip, rot90
        # With an on-the-fly degradation the LR comes from each HR patch; no LR file or cache is read.
        needs_cache = degradation is None and any(p.lr is None for p in self.pairs)
        if needs_cache and cache_dir is None:
            raise DatasetError("HR-only training folders need a cache_dir for the LR images made from them")
        self.cache = LRCache(cache_dir) if cache_dir is not None else None
        # Images smaller than a patch cannot give one (T91 has a 78-pixel image): leave them out, and say so.
        self.skipped: list[Path] = []
        kept = []
        for pair in self.pairs:
            w, h = image_size(pair.hr)
            (kept if min(w, h) >= patch_size else self.skipped).append(pair)
        if not kept:
            w, h = image_size(self.pairs[0].hr)
            raise DatasetError(f"{self.pairs[0].hr}: {w}x{h} is smaller than the HR patch size {patch_size} "
                               "(and so is every other training image)")
        self.skipped = [p.hr for p in self.skipped]
        self.pairs = kept
        self._images: list[tuple[np.ndarray, np.ndarray]] | None = None
        if preload:
            self._images = [self._load(i) for i in range(len(self.pairs))]
        self.sampler: TextureSampler | None = None  # None: uniform crops; else WBSR's HES (use_texture_sampling)

    def use_texture_sampling(self, levels: int = 4, equalize: float = 1.0) -> TextureSampler:
        """Draw patches by texture level (HES, :mod:`litesr.data.texture_sampling`) instead of uniformly; scores
        every image once (its LR, or its HR on the LR grid when the LR is made on the fly)."""
        s = self.scale

        def lr_of(i: int) -> np.ndarray:
            lr, hr = self._images[i] if self._images is not None else self._load(i)
            return hr[::s, ::s] if self.degradation is not None else lr

        self.sampler = build_texture_sampler(lr_of, len(self.pairs), self.patch_size // s, levels=levels,
                                             equalize=equalize)
        return self.sampler

    def prepare_cache(self) -> None:
        """Make every missing LR image now (once, before workers start), so no two workers compute the same one."""
        if self.degradation is not None:
            return
        for pair in self.pairs:
            if pair.lr is None and self.cache is not None and not self.cache.path_for(pair.hr, self.scale).is_file():
                self.cache.get(pair.hr, self.scale)

    def __len__(self) -> int:
        return len(self.pairs) * self.data_repeat

    def _load(self, image_index: int) -> tuple[np.ndarray, np.ndarray]:
        pair = self.pairs[image_index]
        hr = read_rgb_uint8(pair.hr)
        if self.degradation is not None:  # no LR image: a mod-cropped HR and an empty stand-in
            s = self.scale
            return np.zeros((0, 0, 3), np.uint8), hr[: hr.shape[0] - hr.shape[0] % s, : hr.shape[1] - hr.shape[1] % s]
        if pair.lr is None:
            assert self.cache is not None
            lr = self.cache.get(pair.hr, self.scale, hr)
        else:
            lr = read_rgb_uint8(pair.lr)
        lh, lw = lr.shape[:2]
        if hr.shape[0] // self.scale != lh or hr.shape[1] // self.scale != lw:
            raise DatasetError(f"{pair.lr}: LR is {lw}x{lh} but HR {pair.hr.name} is {hr.shape[1]}x{hr.shape[0]}; "
                               f"expected {hr.shape[1] // self.scale}x{hr.shape[0] // self.scale} at x{self.scale}")
        return lr, hr[: lh * self.scale, : lw * self.scale]

    def sample(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        image_index = index % len(self.pairs)
        corner = None
        if self.sampler is not None:  # HES picks the image and the LR-grid corner; the index only seeds rng
            image_index, *corner = self.sampler.draw(rng)
        lr, hr = self._images[image_index] if self._images is not None else self._load(image_index)
        if self.degradation is not None:
            return self._degraded_sample(hr, image_index, rng, corner)
        lp = self.patch_size // self.scale
        if corner is None:
            corner = [int(rng.integers(0, lr.shape[0] - lp + 1)), int(rng.integers(0, lr.shape[1] - lp + 1))]
        top, left = corner
        s = self.scale
        lr_patch = lr[top : top + lp, left : left + lp]
        hr_patch = hr[top * s : (top + lp) * s, left * s : (left + lp) * s]
        lr_patch, hr_patch = augment(lr_patch, hr_patch, rng, self.flip, self.rot90)
        return {"lr": to_tensor(lr_patch), "hr": to_tensor(hr_patch), "index": torch.tensor(image_index)}

    def _degraded_sample(self, hr: np.ndarray, image_index: int, rng: np.random.Generator,
                         corner: Sequence[int] | None = None) -> dict[str, Tensor]:
        """An HR patch (crop on the scale's grid, augmented), and its LR made by the degradation from the same rng.
        ``corner``: the LR-grid corner chosen by HES (else uniform)."""
        assert self.degradation is not None
        s, p = self.scale, self.patch_size
        if corner is None:
            corner = [int(rng.integers(0, (hr.shape[0] - p) // s + 1)),
                      int(rng.integers(0, (hr.shape[1] - p) // s + 1))]
        top, left = corner[0] * s, corner[1] * s
        hr_patch = hr[top : top + p, left : left + p]
        _, hr_patch = augment(hr_patch[::s, ::s], hr_patch, rng, self.flip, self.rot90)
        hr_tensor = to_tensor(hr_patch)
        with torch.no_grad():
            lr_tensor = self.degradation(hr_tensor, rng)
        return {"lr": lr_tensor, "hr": hr_tensor, "index": torch.tensor(image_index)}

    def __getitem__(self, item: int | tuple[int, SampleKey]) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            index, key = item
            return self.sample(index, np.random.default_rng(list(key)))
        return self.sample(int(item), np.random.default_rng(int(item)))


class SampleStream(Sampler):
    """An endless stream of ``(index, key)`` over epochs of a seeded permutation, sharded across processes.

    Each epoch shuffles ``range(length)`` with ``seed + epoch`` (the same on every process), pads it to a multiple of
    ``world_size`` and gives process ``rank`` every ``world_size``-th element (as DistributedSampler). ``start`` is the
    number of samples this process already consumed, so a resumed run continues mid-epoch.
    """

    def __init__(self, length: int, seed: int, *, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.length = length
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start
        self.per_rank = math.ceil(length / world_size)

    def epoch_of(self, consumed: int) -> int:
        return consumed // self.per_rank

    def _epoch_indices(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        order += order[: self.per_rank * self.world_size - self.length]  # pad so every rank gets as many
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, SampleKey]]:
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            indices = self._epoch_indices(epoch)
            for local in range(offset, self.per_rank):
                global_position = local * self.world_size + self.rank
                yield indices[local], (self.seed, epoch, global_position)
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs a length for its own bookkeeping
        return 2**62


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed python and numpy from torch's per-worker seed (itself from the run seed).

    Workers also ignore SIGINT/SIGTERM: Ctrl-C reaches the whole process group, and a worker that died of it would
    crash the main process before it writes its checkpoint. (Workers still exit when the main process goes.)
    """
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def make_synthetic_set(folder: str | os.PathLike, count: int = 4, size: int = 48, seed: int = 0) -> Path:
    """Write ``count`` smooth random RGB PNGs (``size`` x ``size``) to ``folder``: for smoke tests and examples."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        freq = rng.uniform(2.0, 9.0, size=(3, 2))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        img = np.stack([np.sin(freq[c, 0] * 2 * np.pi * x + phase[c]) * np.cos(freq[c, 1] * 2 * np.pi * y)
                        for c in range(3)], axis=-1)
        img = 0.5 + 0.4 * img + 0.05 * rng.standard_normal((size, size, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(folder / f"{i:04d}.png")
    return folder
