"""Reading pickled full modules without running the author's code: stand-in objects for every unknown class.

Old repositories saved ``torch.save(model)``: the pickle names the author's classes (``vdsr.Net``, ``model.RFDB`` ...)
and unpickling it normally imports them and runs whatever they define. Here every global the file asks for that is
not on a short allowlist (tensor rebuild functions, storage types, dtypes, ``OrderedDict``, safe builtins) becomes a
*stand-in*: a class of that name that only records the arguments and the state the pickle gives it. Nothing from the
file is imported or called. An ``nn.Module`` pickles its ``__dict__``, whose ``_parameters``, ``_buffers`` and
``_modules`` dicts hold the tensors and the child modules, so the state dict can be put back together from the
stand-ins alone (:func:`standin_state_dict`). What cannot be read this way (tensors kept inside an unknown object
other than a module, NumPy arrays ...) still needs ``allow_pickle=True``.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import types
import warnings
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

_SAFE_BUILTINS: dict[str, Any] = {name: getattr(__import__("builtins"), name) for name in (
    "set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "int", "float", "str", "tuple", "list",
    "dict", "bool", "object")}


def _rebuild_functions() -> dict[str, Any]:
    names = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
             "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
             "_rebuild_device_tensor_from_cpu_tensor", "_rebuild_meta_tensor_no_storage")
    return {f"torch._utils.{n}": getattr(torch._utils, n) for n in names if hasattr(torch._utils, n)}


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` for a tensor subclass: the plain tensor (the subclass is the
    author's class, a stand-in here, so it is dropped along with its attributes)."""
    if func not in _rebuild_functions().values():
        raise pickle.UnpicklingError(f"tensor rebuilt by {getattr(func, '__name__', func)!r}, which is not allowed")
    tensor = func(*args)
    if isinstance(new_type, type) and issubclass(new_type, Tensor) and type(tensor) is not new_type:
        tensor = tensor.as_subclass(new_type)
    return tensor


def _allowed_globals() -> dict[str, Any]:
    allowed: dict[str, Any] = {f"builtins.{k}": v for k, v in _SAFE_BUILTINS.items()}
    allowed.update({f"__builtin__.{k}": v for k, v in _SAFE_BUILTINS.items()})
    allowed.update({
        "collections.OrderedDict": OrderedDict,
        "collections.Counter": Counter,
        "collections.defaultdict": defaultdict,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.Tensor": Tensor,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
        "torch.serialization._get_layout": torch.serialization._get_layout,
        "copyreg._reconstructor": _reconstructor,
        "copy_reg._reconstructor": _reconstructor,
    })
    allowed.update(_rebuild_functions())
    for name in dir(torch):  # dtypes and layouts are pickled as ``torch.float32`` ...
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype | torch.layout | torch.memory_format | torch.qscheme):
            allowed[f"torch.{name}"] = value
    return allowed


class StandIn:
    """An object of a class the pickle names but litesr never imports: it keeps what unpickling hands it."""

    standin_origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> StandIn:
        obj = object.__new__(cls)
        obj.__dict__["_standin_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # called by REDUCE; nothing of the author's code runs
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_standin_state"] = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.standin_origin}>"


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` (protocol 0/1 pickles) limited to stand-ins and plain builtins."""
    if isinstance(cls, type) and issubclass(cls, StandIn):
        obj = cls.__new__(cls)
        if state is not None:
            obj.__setstate__(state)
        return obj
    if base is object and cls in _SAFE_BUILTINS.values():
        return copyreg._reconstructor(cls, base, state)
    raise pickle.UnpicklingError(f"refused to reconstruct {cls!r}")


class _StandInUnpickler(pickle.Unpickler):
    """``find_class`` returns allowlisted objects, or a stand-in class (one per name) for everything else."""

    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.standins: dict[str, type] = {}
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in self._allowed:
            return self._allowed[qualified]
        if qualified not in self.standins:
            self.standins[qualified] = type(name.rsplit(".", 1)[-1] or "StandIn", (StandIn,),
                                            {"standin_origin": qualified, "__module__": "litesr.unpickle.standins"})
        return self.standins[qualified]


class StandInLoad:
    """The outcome of :func:`load_with_standins`: the object and the class names that were replaced."""

    def __init__(self, obj: Any, standins: list[str]) -> None:
        self.obj = obj
        self.standins = standins


def load_with_standins(path: str | os.PathLike) -> StandInLoad:
    """``torch.load`` of a zip or legacy torch file with the stand-in unpickler (never the file's own classes).

    Raises ``pickle.UnpicklingError`` (or what torch raises for a damaged file) when it cannot be read this way.
    """
    shared: dict[str, type] = {}

    class Unpickler(_StandInUnpickler):
        def __init__(self, file: Any, **kwargs: Any) -> None:
            super().__init__(file, **kwargs)
            self.standins = shared  # legacy files are several pickles in a row: one set of stand-ins for all

    def load(file: Any, **kwargs: Any) -> Any:
        return Unpickler(file, **kwargs).load()

    module = types.ModuleType("litesr_standin_pickle")
    module.Unpickler = Unpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    module.loads = lambda data, **kw: load(io.BytesIO(data), **kw)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy files: "Couldn't retrieve source code for container ..."
        obj = torch.load(path, map_location="cpu", pickle_module=module, weights_only=False)
    return StandInLoad(obj, sorted(shared))


def is_module_like(obj: Any) -> bool:
    """A stand-in whose state has the ``_parameters``/``_modules`` dicts of a pickled ``nn.Module``."""
    return isinstance(obj, StandIn) and isinstance(obj.__dict__.get("_parameters"), Mapping) \
        and isinstance(obj.__dict__.get("_modules"), Mapping)


def standin_state_dict(module: Any, prefix: str = "") -> OrderedDict[str, Tensor]:
    """The state dict of a pickled module rebuilt from its stand-in: parameters, persistent buffers, then the
    children, in the order ``nn.Module.state_dict`` gives them."""
    out: OrderedDict[str, Tensor] = OrderedDict()
    state = module.__dict__
    for name, value in state.get("_parameters", {}).items():
        if isinstance(value, Tensor):
            out[prefix + name] = value.detach()
    skip = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if isinstance(value, Tensor) and name not in skip:
            out[prefix + name] = value
    for name, child in state.get("_modules", {}).items():
        if is_module_like(child):
            out.update(standin_state_dict(child, f"{prefix}{name}."))
    return out


def materialize(obj: Any, depth: int = 4) -> Any:
    """``obj`` with every pickled module (stand-in) replaced by its state dict, inside dicts up to ``depth`` deep;
    other stand-ins are dropped from dicts (they hold no weights litesr can use)."""
    if is_module_like(obj):
        return standin_state_dict(obj)
    if isinstance(obj, Mapping) and depth > 0:
        return {k: materialize(v, depth - 1) for k, v in obj.items() if not (isinstance(v, StandIn)
                                                                             and not is_module_like(v))}
    return obj
