"""The learning strategies of the ``sr`` trainer, switched on by config keys (see docs/training.md):
``train.udl`` (:mod:`.udl`), ``train.distill`` (:mod:`.distill`), ``train.aux_classifier`` (:mod:`.aux_classifier`),
``train.supernet`` (:mod:`.supernet`: which subnet width a step trains); ``train.curriculum`` (:mod:`.curriculum`)
acts on the data instead.

:class:`TrainingStrategies` is what the trainer holds: the trainable modules the strategies add (checkpointed with the
network and optimised with it), and the extra loss terms of a batch, each logged under its own name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..descriptor import describe


class TrainingStrategies:
    def __init__(self, trainer: Any) -> None:
        tcfg = trainer.cfg["train"]
        self.udl = self.distill = self.aux = self.supernet = None
        if tcfg["supernet"]["enabled"]:
            from .supernet import SupernetWidths

            lr_patch = int(trainer.cfg["datasets"]["train"]["patch_size"]) // trainer.scale
            self.supernet = SupernetWidths(tcfg["supernet"], trainer.net, lr_patch, int(trainer.cfg["seed"]))
        if int(tcfg["udl"]["stage1_iters"]) > 0:
            from .udl import UDL

            out_channels = 1 if describe(trainer.net).color_space == "y" else 3
            self.udl = UDL(tcfg["udl"], out_channels)
        if tcfg["distill"]["teacher"]:
            from .distill import Distillation

            self.distill = Distillation(tcfg["distill"], trainer.net, trainer.scale, trainer.device)
        if float(tcfg["aux_classifier"]["weight"]) > 0:
            from .aux_classifier import AuxClassifier

            hr = trainer.cfg["datasets"]["train"]["hr_dir"]
            self.aux = AuxClassifier(tcfg["aux_classifier"], trainer.net, trainer.train_set.pairs, hr,
                                     trainer.device)

    def modules(self) -> dict[str, nn.Module]:
        """Trainable modules by checkpoint name."""
        out: dict[str, nn.Module] = {}
        if self.udl is not None:
            out["udl_head"] = self.udl.head
        if self.distill is not None and len(self.distill.adapters):
            out["distill_adapters"] = self.distill.adapters
        if self.aux is not None:
            out["aux_head"] = self.aux.head
        return out

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules().values() for p in m.parameters()]

    def before_forward(self, iteration: int) -> dict[str, Tensor]:
        """Set up the network for this step's forward (the supernet's width); returns values to log."""
        if self.supernet is None:
            return {}
        return {"width": torch.tensor(float(self.supernet.select(iteration)))}

    def after_forward(self) -> None:
        if self.supernet is not None:
            self.supernet.reset()  # the graph is built; validation and checkpoints see the full width

    def losses(self, batch: Mapping[str, Tensor], sr: Tensor, target: Tensor,
               iteration: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(weighted loss terms to add, values that are only logged) of this batch, after the student's forward."""
        terms: dict[str, Tensor] = {}
        logged: dict[str, Tensor] = {}
        if self.udl is not None:
            terms.update(self.udl.losses(sr.float(), target.float(), batch["lr"], iteration))
        if self.distill is not None:
            terms.update(self.distill.losses(sr, batch["lr"]))
        if self.aux is not None:
            aux_terms, aux_logged = self.aux.losses(batch["index"])
            terms.update(aux_terms)
            logged.update(aux_logged)
        return terms, logged
