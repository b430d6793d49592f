"""What the Upscale page can run: zoo models with shipped weights (or none needed), and checkpoints in --models-dir.

Model ids are opaque strings the page sends back (``zoo:ssiu``, ``file:tiny.safetensors``); a ``file:`` id is only
accepted when it names a file this catalogue listed, so a request can never point the loader at another path.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, LitesrError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class ModelEntry:
    id: str
    label: str
    scales: tuple[int, ...]
    weights: Path | None = None  # a checkpoint file; None: the zoo model and its shipped weights
    zoo_name: str | None = None
    error: str | None = None  # a checkpoint litesr cannot recognise: listed, with the reason, but not runnable

    def to_json(self) -> dict:
        return {"id": self.id, "label": self.label, "scales": list(self.scales), "error": self.error}


class ModelCatalog:
    def __init__(self, models_dir: Path | None) -> None:
        self.models_dir = models_dir
        self._detected: dict[tuple[str, int, int], ModelEntry] = {}  # (name, mtime, size) -> entry
        self._lock = threading.Lock()

    def entries(self) -> list[ModelEntry]:
        return _zoo_entries() + self._file_entries()

    def get(self, model_id: str) -> ModelEntry:
        for entry in self.entries():
            if entry.id == model_id:
                if entry.error:
                    raise ConfigError(f"{entry.label}: {entry.error}")
                return entry
        raise ConfigError(f"unknown model {model_id!r} (the model list offers the ones this studio can run)")

    def _file_entries(self) -> list[ModelEntry]:
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        entries = []
        for path in sorted(self.models_dir.iterdir()):
            if not path.is_file() or path.suffix.lower() not in CHECKPOINT_SUFFIXES or path.name.startswith("."):
                continue
            stat = path.stat()
            key = (path.name, stat.st_mtime_ns, stat.st_size)
            with self._lock:
                entry = self._detected.get(key)
                if entry is None:
                    entry = self._detected[key] = _detect_file(path)
            entries.append(entry)
        return entries


def _detect_file(path: Path) -> ModelEntry:
    """Read the architecture and scale off a checkpoint's shapes (litesr.detect), once per file version."""
    from ..checkpoint import extract_state_dict, read_checkpoint
    from ..detect import detect_architecture

    model_id = f"file:{path.name}"
    try:
        state = extract_state_dict(read_checkpoint(path), source=str(path))
        matches = detect_architecture(state)
    except LitesrError as exc:
        return ModelEntry(model_id, path.name, (), weights=path, error=str(exc).replace(str(path) + ": ", ""))
    if len({m.arch for m in matches}) != 1:
        reason = "no litesr architecture fits it" if not matches else "it fits several architectures"
        return ModelEntry(model_id, path.name, (), weights=path, error=reason)
    match = matches[0]
    scale = match.config.get("scale")
    from ..registry import get_arch

    scales = (int(scale),) if scale is not None else get_arch(match.arch).scales
    return ModelEntry(model_id, f"{path.name} ({match.arch})", tuple(scales), weights=path)


# Zoo models that need no weights at all (building every architecture to count its parameters would take seconds).
PARAMETER_FREE = ("bicubic",)


@functools.cache
def _zoo_entries_cached() -> tuple[ModelEntry, ...]:
    from ..registry import all_variants, get_arch

    entries = []
    for variant in sorted(all_variants().values(), key=lambda v: v.name):
        if variant.pretrained:
            scales = tuple(sorted(variant.pretrained))
        elif variant.arch in PARAMETER_FREE:
            scales = get_arch(variant.arch).scales
        else:
            continue  # trained weights needed and none shipped: a checkpoint in --models-dir instead
        entries.append(ModelEntry(f"zoo:{variant.name}", variant.name, scales, zoo_name=variant.name))
    return tuple(entries)


def _zoo_entries() -> list[ModelEntry]:
    return list(_zoo_entries_cached())
