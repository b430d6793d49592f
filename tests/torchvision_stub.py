"""A stand-in for ``torchvision.transforms.functional``: spandrel imports it, and torchvision does not install with the
pinned CPU torch. Shared by tests/conftest.py and benchmarks/_common.py."""

from __future__ import annotations

import sys
import types


def stub_torchvision() -> None:
    """Register the stub modules unless a torchvision is importable already; the stubbed functions raise."""
    if "torchvision.transforms.functional" in sys.modules:
        return
    tv = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")

    class InterpolationMode:
        NEAREST = "nearest"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"

    def _unavailable(*_args, **_kwargs):
        raise RuntimeError("torchvision stub: not available without torchvision")

    functional.InterpolationMode = InterpolationMode
    functional.rotate = _unavailable
    functional.normalize = _unavailable
    transforms.functional = functional
    transforms.InterpolationMode = InterpolationMode
    tv.transforms = transforms
    sys.modules.setdefault("torchvision", tv)
    sys.modules.setdefault("torchvision.transforms", transforms)
    sys.modules.setdefault("torchvision.transforms.functional", functional)
