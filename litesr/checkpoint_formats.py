"""Checkpoint files recognised by their content (magic bytes), not their suffix, each with its own clear error.

safetensors, torch zip archives, legacy torch pickles and tar files are read; pickled full modules are read with
stand-ins for the author's classes (:mod:`litesr.unpickle`) before ``allow_pickle`` is ever needed; NumPy ``.npy``
arrays go to the SR-LUT reader; ``.npz`` archives, HDF5 and other zip files are named for what they are.
"""

from __future__ import annotations

import ast
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import CheckpointError, clean_message

_NPY_MAGIC = b"\x93NUMPY"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


def sniff(path: str | os.PathLike) -> str:
    """What the bytes of ``path`` are: ``safetensors``, ``torch-zip``, ``npz``, ``zip``, ``npy``, ``torch-legacy``
    (the pre-1.6 pickle format), ``tar`` (pre-0.4 torch), ``pickle``, ``hdf5`` or ``unknown``."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(512)
    size = path.stat().st_size
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch-zip"  # a damaged zip: torch.load gives the precise reason
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 2 <= header_len <= size - 8:
            return "safetensors"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        try:
            with path.open("rb") as f:
                magic = _NoGlobals(f).load()  # the legacy format starts with a plain int
        except Exception:  # noqa: BLE001 - anything that is not a small int first is another pickle
            magic = None
        return "torch-legacy" if magic == _LEGACY_TORCH_MAGIC else "pickle"
    return "unknown"


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name}")


def _npy_header(path: Path) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of an ``.npy`` file, read from its header (a Python literal; nothing is unpickled)."""
    with path.open("rb") as f:
        f.read(6)
        major = f.read(2)[0]
        length_size = 2 if major == 1 else 4
        (length,) = struct.unpack("<H" if length_size == 2 else "<I", f.read(length_size))
        header = ast.literal_eval(f.read(length).decode("latin1"))
    return tuple(header["shape"]), str(header["descr"])


def _npy_error(path: Path, reason: str) -> CheckpointError:
    try:
        shape, dtype = _npy_header(path)
        what = f"a NumPy array (shape {shape}, dtype {dtype})"
    except (OSError, ValueError, SyntaxError, KeyError, IndexError, struct.error):
        what = "a NumPy .npy file with an unreadable header"
    return CheckpointError(f"{path}: {what}, not a model checkpoint; litesr reads .npy files only as SR-LUT tables "
                           f"(int8, shape (L**D, 1, r, r), e.g. Model_S_x4_4bit_int8.npy), and this one is not "
                           f"({reason})")


def _read_npy(path: Path) -> dict[str, Tensor]:
    try:
        from .lut import read_lut  # an SR-LUT table is the one kind of .npy file that holds a model
    except ImportError:
        raise _npy_error(path, "this litesr has no SR-LUT reader") from None
    try:
        return {"lut": torch.from_numpy(read_lut(path).values)}
    except CheckpointError as exc:
        raise _npy_error(path, str(exc).removeprefix(f"{path}: ")) from None


def _npz_error(path: Path) -> CheckpointError:
    with zipfile.ZipFile(path) as zf:
        names = [n.removesuffix(".npy") for n in zf.namelist()]
    shown = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    return CheckpointError(f"{path}: a NumPy .npz archive of {len(names)} arrays ({shown}), not a model checkpoint; "
                           "an SR-LUT table is a single .npy array: save each table with numpy.save and pass that")


def read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({clean_message(str(exc))[:200]})") from None


def _contains_tensors(obj: Any, depth: int = 0) -> bool:
    if isinstance(obj, Tensor):
        return True
    if isinstance(obj, dict) and depth < 5:
        return any(_contains_tensors(v, depth + 1) for v in obj.values())
    return False


def _read_with_standins(path: Path) -> Any | None:
    """The file's content with stand-ins for its classes and pickled modules turned into state dicts; None when
    that yields no tensors or fails (then only a full, trusted unpickling can read it)."""
    from .unpickle import load_with_standins, materialize

    try:
        obj = materialize(load_with_standins(path).obj)
    except Exception:  # noqa: BLE001 - whatever the stand-ins cannot rebuild is reported as "needs allow_pickle"
        return None
    return obj if _contains_tensors(obj) else None


def read_torch(path: Path, *, allow_pickle: bool = False) -> Any:
    """A torch zip or legacy file: tensors only (``weights_only``), else stand-ins, else (``allow_pickle``) all."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = clean_message(str(exc))
        if "Unsupported operand" in text and "Unsupported global" not in text:
            # Not a pickle that asks for a forbidden class: bytes that are no pickle at all (random, wrong file).
            raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive, and not a pickle "
                                  "stream either)") from None
        first = text or "unsupported global"
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, AttributeError,
            ModuleNotFoundError) as exc:
        msg = clean_message(str(exc)) or type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({msg[:200]})") from None
    except (IndexError, KeyError, TypeError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        # Random bytes read as a legacy pickle stream fail inside the unpickler itself.
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (its bytes do not decode: "
                              f"{type(exc).__name__})") from None
    standin = _read_with_standins(path)
    if standin is not None:
        return standin
    if allow_pickle:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - the author's code can fail in any way: one line, no traceback
            msg = clean_message(str(exc)) or type(exc).__name__
            raise CheckpointError(f"{path}: cannot unpickle ({type(exc).__name__}: {msg[:200]})") from None
    raise CheckpointError(
        f"{path}: holds pickled objects that litesr's stand-ins cannot turn into tensors ({first[:160]}). "
        "If you trust the file, convert it once with `litesr convert --allow-pickle IN OUT.safetensors` "
        "(or pass allow_pickle=True)"
    )


def read_by_content(path: str | os.PathLike, *, allow_pickle: bool = False) -> Any:
    """The raw object stored in ``path``, read according to what its bytes are (see :func:`sniff`)."""
    path = Path(path)
    kind = sniff(path)
    if kind == "safetensors" or path.suffix == ".safetensors":
        return read_safetensors(path)
    if kind == "npy":
        return _read_npy(path)
    if kind == "npz":
        raise _npz_error(path)
    if kind == "hdf5":
        raise CheckpointError(f"{path}: an HDF5 file (Keras/TensorFlow weights?), not a PyTorch checkpoint")
    if kind == "zip":
        raise CheckpointError(f"{path}: a zip archive but not a PyTorch checkpoint (it has no data.pkl)")
    return read_torch(path, allow_pickle=allow_pickle)
