"""Multi-task training with an auxiliary classification head: ``train.aux_classifier: {weight, layer}``.

The class of a training patch is the index of its folder in ``datasets.train.hr_dir`` (the notes' example:
``[natural/, manga/]``). A forward hook takes the output of the model's layer ``layer``; the head is a global average
pool and a linear layer to one logit per folder, trained with cross-entropy times ``weight`` together with the SR
losses (checkpointed as ``aux_head``). Logged: ``aux_ce`` (weighted) and ``aux_acc`` (the batch's accuracy, not a
loss term).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distill import _Capture, _module


def folder_labels(pairs: Sequence[Any], hr_dirs: Sequence[str]) -> Tensor:
    """For each training pair, the index of the ``hr_dirs`` folder that holds its HR file."""
    roots = [Path(d).resolve() for d in hr_dirs]
    labels = []
    for pair in pairs:
        hr = Path(pair.hr).resolve()
        label = next((i for i, root in enumerate(roots) if root in hr.parents), None)
        if label is None:
            raise ValueError(f"{hr}: not under any datasets.train.hr_dir folder")
        labels.append(label)
    return torch.tensor(labels, dtype=torch.long)


class AuxClassifier:
    """The hook, the head and the per-image labels."""

    def __init__(self, cfg: Mapping[str, Any], net: nn.Module, pairs: Sequence[Any], hr_dirs: Sequence[str],
                 device: torch.device) -> None:
        self.weight = float(cfg["weight"])
        self.labels = folder_labels(pairs, hr_dirs).to(device)
        self.classes = len(hr_dirs)
        self.hook = _Capture(_module(net, str(cfg["layer"]), "model (train.aux_classifier.layer)"))
        x = torch.rand(1, 3, 32, 32, device=device)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            from ..forward import run_model_with_luma

            run_model_with_luma(net, x, recombine=False)
        net.train(was_training)
        channels = self.hook.value.shape[1]
        self.head = nn.Linear(channels, self.classes).to(device)

    def losses(self, image_index: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(terms added to the loss, values only logged)."""
        features = self.hook.value.float()
        logits = self.head(features.mean(dim=(2, 3)))
        target = self.labels[image_index.long()]
        accuracy = (logits.argmax(dim=1) == target).float().mean().detach()
        return {"aux_ce": self.weight * F.cross_entropy(logits, target)}, {"aux_acc": accuracy}
