"""Knowledge distillation: ``train.distill`` trains the student (``model``) to follow a frozen teacher.

    train:
      distill:
        teacher: imdn
        teacher_weights: weights/IMDN_x2.pth
        output_weight: 1.0                       # L1(student SR, teacher SR)
        features: {fuse: c}                      # student layer -> teacher layer (named modules)
        feature_weight: 1.0

The teacher is any zoo model loaded from its weights file (architecture options read from the tensor shapes, as
``litesr eval`` does), frozen (``requires_grad=False``, eval mode) and run under ``torch.no_grad`` on the same LR
batch through the one run path (its own input range and colour space). Feature distillation captures each named
layer's output with a forward hook on both networks; a 1x1 conv adapter (trained with the student, checkpointed as
``distill_adapters``) maps the student's channels to the teacher's, and an L1 compares them (the student's map is
resized bilinearly when the spatial sizes differ). Each term is logged: ``distill_out``, ``distill_feat``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..forward import run_model_with_luma


def _module(model: nn.Module, name: str, who: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules or not name:
        close = difflib.get_close_matches(name, [n for n in modules if n], n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ConfigError(f"train.distill.features: the {who} has no layer {name!r}{hint}")
    return modules[name]


class _Capture:
    """A forward hook that keeps the latest output of a layer."""

    def __init__(self, module: nn.Module) -> None:
        self.value: Tensor | None = None
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.value = output[0] if isinstance(output, tuple | list) else output


def _adapter_key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot hold dots


class Distillation:
    """Teacher, hooks and adapters; :meth:`losses` after the student's forward pass of the same batch."""

    def __init__(self, cfg: Mapping[str, Any], student: nn.Module, scale: int, device: torch.device) -> None:
        from ..detect import load_model

        self.output_weight = float(cfg["output_weight"])
        self.feature_weight = float(cfg["feature_weight"])
        self.teacher = load_model(cfg["teacher_weights"], str(cfg["teacher"]), scale=scale,
                                  **(cfg["teacher_options"] or {})).to(device)
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        pairs = dict(cfg["features"] or {})
        self.student_hooks = {s: _Capture(_module(student, s, "student")) for s in pairs}
        self.teacher_hooks = {s: _Capture(_module(self.teacher, t, f"teacher {cfg['teacher']}"))
                              for s, t in pairs.items()}
        self.adapters = nn.ModuleDict()
        if pairs:
            self._build_adapters(student, device)

    def _build_adapters(self, student: nn.Module, device: torch.device) -> None:
        """Channel counts from one dry run of both networks on a small input."""
        x = torch.rand(1, 3, 32, 32, device=device)
        was_training = student.training
        student.eval()
        with torch.no_grad():
            run_model_with_luma(student, x, recombine=False)
            run_model_with_luma(self.teacher, x, recombine=False)
        student.train(was_training)
        for name in self.student_hooks:
            s_ch = self.student_hooks[name].value.shape[1]
            t_ch = self.teacher_hooks[name].value.shape[1]
            self.adapters[_adapter_key(name)] = nn.Conv2d(s_ch, t_ch, 1).to(device)

    def teacher_output(self, lr: Tensor) -> Tensor:
        with torch.no_grad():
            return run_model_with_luma(self.teacher, lr, recombine=False)[0].float()

    def losses(self, sr: Tensor, lr: Tensor) -> dict[str, Tensor]:
        """Run the teacher on ``lr`` (no grad) and compare with the student's output and hooked features, which the
        student's forward pass of this batch has just captured."""
        teacher_sr = self.teacher_output(lr)
        if teacher_sr.shape != sr.shape:
            raise ConfigError(f"train.distill: the teacher's output {tuple(teacher_sr.shape)} does not match the "
                              f"student's {tuple(sr.shape)} (same scale and colour space needed)")
        out: dict[str, Tensor] = {}
        if self.output_weight:
            out["distill_out"] = self.output_weight * F.l1_loss(sr.float(), teacher_sr)
        if self.student_hooks:
            total = torch.zeros((), device=sr.device)
            for name, hook in self.student_hooks.items():
                student_f = self.adapters[_adapter_key(name)](hook.value.float())
                teacher_f = self.teacher_hooks[name].value.float()
                if student_f.shape[-2:] != teacher_f.shape[-2:]:
                    student_f = F.interpolate(student_f, size=teacher_f.shape[-2:], mode="bilinear",
                                              align_corners=False)
                total = total + F.l1_loss(student_f, teacher_f)
            out["distill_feat"] = self.feature_weight * total / len(self.student_hooks)
        return out
