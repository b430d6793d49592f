"""``--backend auto``: the fastest fp32 CPU backend for this model, measured here once and remembered.

The default candidates (:data:`DEFAULT_CANDIDATES`) are eager PyTorch in NCHW and in channels-last, ONNX Runtime and
OpenVINO (the last two only where installed). ``torch.compile`` is one of :data:`CANDIDATES` but measured only when
asked for (``candidates=[..., "compile"]``; ``--backend compile`` runs it outright): its first compile took over 15
minutes in an earlier run on a loaded 2-core machine, too long for a warm-up. A model without parameters (bicubic) has
nothing to speed up: ``auto`` is the torch backend there, measured on nothing. Each candidate is prepared with
:func:`litesr.fast.prepare_model`, run once to warm up (compiling, for ``compile``), then timed in turn (A B C A B C
...) on a small input of the shape bucket; a candidate whose output differs from fp32 eager by more than ``tolerance``
(1e-4 on [0, 1] images) is ruled out. The winner is cached per model (architecture, variant, config), shape bucket
(sides rounded up to powers of two) and machine (CPU model and family, threads, library versions) in a JSON file in
the user cache directory (:func:`cache_path`; ``LITESR_CACHE_DIR`` overrides it), written atomically; a later run
reads the choice instead of measuring again.

Reduced precision and CUDA are not measured here: there ``auto`` means the torch backend (the precision rule is
:mod:`litesr.device`'s).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoint import atomic_output
from .descriptor import describe
from .device import cpu_family, cpu_model_name
from .errors import ConfigError
from .fast import prepare_model
from .forward import run_model

CANDIDATES: tuple[str, ...] = ("torch", "torch-nhwc", "compile", "onnx", "openvino")
DEFAULT_CANDIDATES: tuple[str, ...] = ("torch", "torch-nhwc", "onnx", "openvino")  # compile only when asked for
CACHE_VERSION = 1


@dataclass(frozen=True)
class BackendChoice:
    """The backend ``auto`` chose, why, and the medians it was chosen on (ms; empty when read from the cache)."""

    backend: str
    bucket: str
    from_cache: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    ruled_out: dict[str, str] = field(default_factory=dict)
    reason: str = ""  # why nothing was measured (reduced precision, CUDA, a model without parameters)

    def __str__(self) -> str:
        if self.reason:
            return f"backend auto -> {self.backend} ({self.reason})"
        if self.from_cache:
            return f"backend auto -> {self.backend} (measured earlier for inputs up to {self.bucket}; cached)"
        measured = ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(self.timings_ms.items(), key=lambda i: i[1]))
        text = f"backend auto -> {self.backend} (measured on {self.bucket}: {measured})"
        if self.ruled_out:
            text += "; ruled out: " + "; ".join(f"{name}: {why}" for name, why in self.ruled_out.items())
        return text


def cache_path() -> Path:
    """The JSON file of measured choices: ``$LITESR_CACHE_DIR``, else ``$XDG_CACHE_HOME/litesr``, else
    ``~/.cache/litesr``, then ``backend_choice.json``."""
    root = os.environ.get("LITESR_CACHE_DIR")
    if not root:
        root = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "litesr")
    return Path(root) / "backend_choice.json"


def shape_bucket(height: int, width: int) -> str:
    """Input sizes that share a measurement: each side rounded up to a power of two, at least 32."""
    def up(side: int) -> int:
        return max(32, 1 << max(0, int(side) - 1).bit_length())

    return f"{up(height)}x{up(width)}"


def machine_key(threads: int | None = None) -> str:
    """What makes a measurement valid on another run: the CPU, its family, the thread count and the libraries."""
    versions = [f"torch {torch.__version__}"]
    for module in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    return " | ".join([cpu_model_name() or "unknown CPU", cpu_family(), f"{threads or torch.get_num_threads()} threads",
                       *versions])


def model_key(model: nn.Module) -> str:
    """Architecture, variant, scale and config (not the weights: they do not change the speed)."""
    d = describe(model)
    config = json.dumps(d.config, sort_keys=True, default=str)
    digest = hashlib.sha1(config.encode()).hexdigest()[:12]
    return f"{d.arch}/{d.variant}/x{d.scale}/{d.deploy_form}/{digest}"


def available_candidates() -> list[str]:
    """The default candidates that can run here (ONNX Runtime and OpenVINO only where installed; not compile)."""
    from .export import openvino_available

    names = ["torch", "torch-nhwc"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return names
    names.append("onnx")
    if openvino_available():
        names.append("openvino")
    return names


def _prepare(model: nn.Module, name: str, threads: int | None) -> nn.Module:
    if name == "torch-nhwc":
        return prepare_model(model, channels_last=True)
    return prepare_model(model, backend=name, threads=threads)  # type: ignore[arg-type]


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # no cache yet, or a damaged one: measure again and rewrite it
    return data if isinstance(data, dict) and data.get("version") == CACHE_VERSION else {}


def measure_backends(
    model: nn.Module, sample_hw: tuple[int, int], candidates: Sequence[str], *, threads: int | None = None,
    rounds: int = 3, tolerance: float = 1e-4,
) -> tuple[dict[str, float], dict[str, str], dict[str, nn.Module]]:
    """Median ms of every candidate on a seeded ``sample_hw`` input (after one warm-up call each, alternating), the
    ones ruled out with why, and the prepared models."""
    x = torch.rand(1, 3, *sample_hw, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = run_model(prepare_model(model), x).float().clamp(0, 1)
    prepared: dict[str, nn.Module] = {}
    ruled_out: dict[str, str] = {}
    for name in candidates:
        try:
            net = _prepare(model, name, threads)
            with torch.inference_mode():
                diff = (run_model(net, x).float().clamp(0, 1) - reference).abs().max().item()
        except Exception as exc:  # noqa: BLE001 - a backend that cannot run this model is simply not chosen
            ruled_out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
            continue
        if diff > tolerance:
            ruled_out[name] = f"output differs from fp32 eager by {diff:.1e} (> {tolerance:.0e})"
            continue
        prepared[name] = net
    runs: dict[str, list[float]] = {name: [] for name in prepared}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, net in prepared.items():
                start = time.perf_counter()
                run_model(net, x)
                runs[name].append(time.perf_counter() - start)
    timings = {name: statistics.median(times) * 1000.0 for name, times in runs.items()}
    return timings, ruled_out, prepared


def prepare_fastest(
    model: nn.Module, sample_hw: tuple[int, int] = (128, 128), *, device: str | torch.device = "cpu",
    precision: str = "fp32", candidates: Sequence[str] | None = None, threads: int | None = None,
    use_cache: bool = True, cache_file: str | os.PathLike | None = None, rounds: int = 3,
) -> tuple[nn.Module, BackendChoice]:
    """``model`` prepared with the fastest measured backend for inputs of ``sample_hw``'s bucket, and the choice.

    ``candidates``: a subset of :data:`CANDIDATES` (default: those of :data:`DEFAULT_CANDIDATES` that are installed;
    name ``"compile"`` to measure torch.compile too). The measurement runs on an input of the bucket's size capped at
    128 x 128 pixels a side (a small warm-up, not the real images)."""
    target = torch.device(device)
    if target.type != "cpu" or precision != "fp32":
        prepared = prepare_model(model, device=target, precision=precision)
        return prepared, BackendChoice("torch", "any", False,
                                       reason=f"{precision} on {target.type}: auto measures fp32 on the CPU only")
    if not any(p.numel() for p in model.parameters()):
        return prepare_model(model), BackendChoice("torch", "any", False,
                                                   reason="the model has no parameters: nothing to speed up, "
                                                          "not measured")
    names = list(candidates) if candidates is not None else available_candidates()
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        raise ConfigError(f"unknown backend candidates {unknown or names} (use {', '.join(CANDIDATES)})")
    bucket = shape_bucket(*sample_hw)
    key = f"{model_key(model)} @ {bucket} @ {machine_key(threads)} @ {','.join(sorted(names))}"
    path = Path(cache_file) if cache_file is not None else cache_path()
    cache = _read_cache(path) if use_cache else {}
    cached = cache.get("choices", {}).get(key)
    if isinstance(cached, dict) and cached.get("backend") in names:
        return _prepare(model, cached["backend"], threads), BackendChoice(cached["backend"], bucket, True)
    measure_hw = tuple(min(128, int(s)) for s in bucket.split("x"))
    timings, ruled_out, prepared = measure_backends(model, measure_hw, names, threads=threads,  # type: ignore[arg-type]
                                                    rounds=rounds)
    if not timings:  # eager fp32 always runs; this only happens when every candidate given was ruled out
        raise ConfigError("backend auto: none of the candidates ran this model (" +
                          "; ".join(f"{n}: {why}" for n, why in ruled_out.items()) + ")")
    best = min(timings, key=timings.__getitem__)
    if use_cache:
        cache = _read_cache(path)  # re-read: another process may have added its own choice meanwhile
        cache.setdefault("choices", {})[key] = {"backend": best, "timings_ms": timings,
                                                "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        cache["version"] = CACHE_VERSION
        try:
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only cache directory costs a re-measurement next time, nothing else
    return prepared[best], BackendChoice(best, bucket, False, timings, ruled_out)
