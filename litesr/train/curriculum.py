"""Curriculum learning: ``train.curriculum`` lists stages of increasing difficulty, each with its iterations.

    train:
      curriculum:
        - {iterations: 2000, patch_size: 48}                                    # small patches, clean bicubic LR
        - {iterations: 2000, patch_size: 96, degradation: {type: classical, noise: [0, 5]}}
        - {patch_size: 128, degradation: {type: classical, noise: [0, 15]}}     # the last stage runs to the end

A stage may change the HR patch size and the degradation (``datasets.train.degradation``'s forms; unset = the
dataset's own). Scale curricula (x2 -> x3 -> x4) are multi-scale training's: ``train.type: multiscale``.

The stage of a sample is a pure function of the iteration it belongs to (from the sampler's key, as multi-scale
training does), so it is the same for every sample of a batch, in every DataLoader worker, and after ``--resume``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

_UNSET = object()


def stage_starts(stages: Sequence[Mapping[str, Any]]) -> list[int]:
    """First iteration of each stage: ``[0, it_0, it_0 + it_1, ...]``."""
    starts = [0]
    for stage in stages[:-1]:
        starts.append(starts[-1] + int(stage["iterations"]))
    return starts


def stage_at(starts: Sequence[int], iteration: int) -> int:
    return bisect.bisect_right(list(starts), iteration) - 1


class CurriculumPatches(Dataset):
    """One training set per stage (same images); a sample is drawn from the stage of its iteration."""

    def __init__(self, sets: Sequence[Any], starts: Sequence[int], *, batch_per_rank: int, world_size: int = 1) -> None:
        self.sets = list(sets)
        self.starts = list(starts)
        self.batch_per_rank = batch_per_rank
        self.world_size = world_size
        self.length = len(self.sets[0])
        self.per_rank = math.ceil(self.length / world_size)  # SampleStream's epoch length per process
        self.pairs = self.sets[0].pairs
        self.skipped = self.sets[0].skipped
        self.patch_size = self.sets[0].patch_size

    def __len__(self) -> int:
        return self.length

    def prepare_cache(self) -> None:
        for ds in self.sets:
            ds.prepare_cache()

    def stage_of(self, iteration: int) -> int:
        return stage_at(self.starts, iteration)

    def __getitem__(self, item: int | tuple[int, tuple[int, int, int]]) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            _, (_, epoch, position) = item
            consumed = epoch * self.per_rank + position // self.world_size  # this process's samples so far
        else:
            consumed = int(item)
        return self.sets[self.stage_of(consumed // self.batch_per_rank)][item]


def build_curriculum_set(trainer: Any) -> CurriculumPatches:
    """The trainer's training set at each stage's patch size and degradation."""
    stages = trainer.cfg["train"]["curriculum"]
    dcfg = trainer.cfg["datasets"]["train"]
    sets = []
    for stage in stages:
        degradation = stage["degradation"] if stage.get("degradation") is not None else dcfg.get("degradation")
        sets.append(trainer.build_train_set(patch_size=int(stage.get("patch_size", dcfg["patch_size"])),
                                            degradation=degradation))
    return CurriculumPatches(sets, stage_starts(stages), batch_per_rank=trainer._per_rank_batch(),
                             world_size=trainer.dist.world_size)
