"""Name-independent detection: recognise a state dict whose module names were changed, from its structure alone.

Forks and challenge submissions re-save a published network under their own names (``B1.c1_r`` for
``blocks.0.c1_r``) with identical tensors. Name-based detection (:mod:`litesr.detect`) cannot read those. This stage
compares the *key graph* instead: the tree the dotted names imply (which tensors belong to one module, which modules
are children of which), the leaf names (``weight``, ``bias``: what a ``Conv2d`` calls its tensors, which a renaming of
blocks keeps) and the tensor ranks, against a small template of every registered architecture (its ``tiny``
configuration, cheap to build). A ``Sequential``/``ModuleList`` of the template (children named 0, 1, ...) may hold a
different number of repeated blocks in the file, so depth is free; widths and scale are free because only ranks are
compared. A match translates the file's keys into the architecture's own names; the architecture's detector then
reads the configuration off the translated shapes, and the proposal only counts when the model built from it has
*exactly* the translated keys and shapes. Two architectures that both fit are refused, as in the name stage.

Sibling modules of the same structure are paired in the order the file lists them (torch files keep the order the
modules were created in), or in natural order (``blk2`` before ``blk10``) when the file's keys are sorted, as
safetensors stores them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch

from .registry import StateDict, all_archs, create_model
from .shape_fit import fits

_MAX_CHILDREN_SEARCH = 64  # in a sorted file, how far to look for a template child's partner among its siblings


@dataclass
class _Node:
    name: str = ""
    # leaf name -> (full key, form): the form is the rank, and the kernel size of a conv weight (rank 4)
    leaves: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)  # in the order the keys list them
    _sig: tuple | None = field(default=None, compare=False, repr=False)

    def signature(self) -> tuple:
        """The structure without any name but the leaves': equal for two blocks of one kind."""
        if self._sig is None:
            leaves = tuple(sorted((name, form) for name, (_, form) in self.leaves.items()))
            self._sig = (leaves, tuple(c.signature() for c in self.children.values()))
        return self._sig

    def exact_signature(self) -> tuple:
        return (tuple(sorted(self.shapes.items())), tuple(c.exact_signature() for c in self.children.values()))


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _tree(shapes: Mapping[str, tuple[int, ...]]) -> _Node:
    keys = list(shapes)
    if keys == sorted(keys):  # a sorted file (safetensors) lost the module order: natural order is the best guess
        keys.sort(key=_natural)
    root = _Node()
    for key in keys:
        *path, leaf = key.split(".")
        node = root
        for part in path:
            node = node.children.setdefault(part, _Node(part))
        shape = shapes[key]
        node.leaves[leaf] = (key, (len(shape), *shape[2:]) if len(shape) == 4 else (len(shape),))
        node.shapes[leaf] = shape
    return root


_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def _numbered_runs(names: list[str]) -> list[tuple[int, int, str, list[int]]]:
    """Maximal stretches of consecutive children named ``<prefix><number>`` (``0, 1, 2``; ``B1, B2``; ``block_1``),
    the places where a configuration's depth shows: (first index, end index, prefix, numbers)."""
    runs: list[tuple[int, int, str, list[int]]] = []
    i = 0
    while i < len(names):
        m = _NUMBERED.match(names[i])
        if m is None:
            i += 1
            continue
        prefix, numbers, j = m.group(1), [int(m.group(2))], i + 1
        while j < len(names) and (n := _NUMBERED.match(names[j])) and n.group(1) == prefix \
                and int(n.group(2)) > numbers[-1]:
            numbers.append(int(n.group(2)))
            j += 1
        runs.append((i, j, prefix, numbers))
        i = j
    return runs


def _order_readable(pairs: list[tuple[str, dict, _Node, _Node]]) -> bool:
    """In a sorted file the module order is gone: siblings of identical shapes can only be told apart when their names
    differ only in their numbers (``blk1``, ``blk2``; ``c1_r``, ``c2_r``), not when a renaming made them ``xq``,
    ``ab``."""
    groups: dict[tuple, list[str]] = {}
    for *_, file_kid in pairs:
        groups.setdefault(file_kid.exact_signature(), []).append(file_kid.name)
    for names in groups.values():
        if len(names) > 1 and len({re.sub(r"\d+", "#", n) for n in names}) != 1:
            return False  # names that differ in more than their numbers
        if len(names) > 1 and not any(ch.isdigit() for ch in names[0]):
            return False
    return True


class _Matcher:
    """Pairs a template tree with a file's tree; yields {file key: key relative to the template node}."""

    def __init__(self, sorted_file: bool = False) -> None:
        self._memo: dict[tuple[int, int], dict[str, str] | None] = {}
        self.sorted_file = sorted_file

    def match(self, tmpl: _Node, node: _Node) -> dict[str, str] | None:
        memo_key = (id(tmpl), id(node))
        if memo_key not in self._memo:
            self._memo[memo_key] = self._match(tmpl, node)
        return self._memo[memo_key]

    def _match(self, tmpl: _Node, node: _Node) -> dict[str, str] | None:
        if set(tmpl.leaves) != set(node.leaves):
            return None
        if any(tmpl.leaves[name][1] != node.leaves[name][1] for name in tmpl.leaves):
            return None
        mapping = {node.leaves[name][0]: name for name in tmpl.leaves}
        pairs = self._pair_children(tmpl, node)
        if pairs is None or (self.sorted_file and not _order_readable(pairs)):
            return None
        for name, sub, _, _ in pairs:
            mapping.update({k: f"{name}.{v}" for k, v in sub.items()})
        return mapping

    def _pair_children(self, tmpl: _Node, node: _Node) -> list[tuple[str, dict[str, str]]] | None:
        names = list(tmpl.children)
        kids = list(tmpl.children.values())
        file_kids = list(node.children.values())
        if len(file_kids) == len(kids):
            return self._in_order(kids, file_kids, names) or self._unordered(tmpl, file_kids)
        for first, end, prefix, numbers in _numbered_runs(names):  # another depth: one run repeats more or less
            if self.sorted_file:
                pairs = self._unordered_run(tmpl, file_kids, (first, end, prefix, numbers))
                if pairs is not None:
                    return pairs
                continue
            for start in range(first, end):
                for period in range(1, end - start + 1):
                    pairs = self._repeated(kids, names, file_kids, (first, end, prefix, numbers), start, period)
                    if pairs is not None:
                        return pairs
        return None

    def _unordered(self, tmpl: _Node, file_kids: list[_Node]) -> list[tuple[str, dict[str, str]]] | None:
        """Same number of children in another order (a sorted file): each template child, in order, takes the
        first free file child that matches."""
        free = list(file_kids)
        pairs = []
        for name, child in tmpl.children.items():
            for i, candidate in enumerate(free[:_MAX_CHILDREN_SEARCH]):
                sub = self.match(child, candidate)
                if sub is not None:
                    pairs.append((name, sub, child, candidate))
                    del free[i]
                    break
            else:
                return None
        return pairs

    def _unordered_run(self, tmpl: _Node, file_kids: list[_Node],
                       run: tuple[int, int, str, list[int]]) -> list | None:
        """A sorted file of another depth: the file children that match the run's (single) block are the blocks,
        in natural order; the others pair with the rest of the template as in :meth:`_unordered`."""
        first, end, prefix, numbers = run
        names = list(tmpl.children)
        kids = list(tmpl.children.values())
        if len({k.signature() for k in kids[first:end]}) != 1:
            return None
        others = [(n, k) for i, (n, k) in enumerate(zip(names, kids, strict=True)) if not first <= i < end]
        blocks = [f for f in file_kids if self.match(kids[first], f) is not None]
        rest = [f for f in file_kids if all(f is not b for b in blocks)]
        if not blocks or len(rest) != len(others):
            return None
        step = numbers[1] - numbers[0] if len(numbers) > 1 else 1
        pairs = [(f"{prefix}{numbers[0] + i * step}", self.match(kids[first], f), kids[first], f)
                 for i, f in enumerate(blocks)]
        free = list(rest)
        for name, child in others:
            for i, candidate in enumerate(free):
                sub = self.match(child, candidate)
                if sub is not None:
                    pairs.append((name, sub, child, candidate))
                    del free[i]
                    break
            else:
                return None
        return pairs

    def _in_order(self, kids: list[_Node], file_kids: list[_Node], names: list[str]) -> list | None:
        pairs = []
        for tmpl_kid, file_kid, name in zip(kids, file_kids, names, strict=True):
            sub = self.match(tmpl_kid, file_kid)
            if sub is None:
                return None
            pairs.append((name, sub, tmpl_kid, file_kid))
        return pairs

    def _repeated(self, kids: list[_Node], names: list[str], file_kids: list[_Node],
                  run: tuple[int, int, str, list[int]], start: int, period: int) -> list | None:
        """The template's run ``names[first:end]`` read as ``head + pattern * repeats + rest`` from ``start``; the
        file repeats the pattern ``repeats + extra / period`` times and is renumbered to match."""
        first, end, prefix, numbers = run
        signature = [k.signature() for k in kids[start : start + period]]
        repeats = 1
        while start + (repeats + 1) * period <= end and \
                [k.signature() for k in kids[start + repeats * period : start + (repeats + 1) * period]] == signature:
            repeats += 1
        extra = len(file_kids) - len(kids)
        if extra % period or repeats + extra // period < 1:
            return None
        file_repeats = repeats + extra // period
        pattern_end = start + repeats * period
        at = start - first  # index of the pattern's first element in ``numbers``
        # the numbering step of one repetition (a Sequential with parameter-free layers numbers 0, 2, 4 ...)
        step = numbers[at + period] - numbers[at] if start + period < end else period
        shift = (file_repeats - repeats) * step
        new_names = names[:start]
        new_names += [f"{prefix}{numbers[at + i % period] + (i // period) * step}"
                      for i in range(file_repeats * period)]
        new_names += [f"{prefix}{numbers[j - first] + shift}" if j < end else names[j]
                      for j in range(pattern_end, len(names))]
        template = kids[:start] + kids[start : start + period] * file_repeats + kids[pattern_end:]
        return self._in_order(template, file_kids, new_names)


@dataclass(frozen=True)
class StructuralMatch:
    """An architecture found by structure: its config and how the file's keys map onto the architecture's."""

    arch: str
    config: dict[str, Any]
    mapping: dict[str, str]  # file key -> litesr key

    def renamed(self) -> dict[str, str]:
        return {k: v for k, v in self.mapping.items() if k != v}

    def module_renames(self) -> list[tuple[str, str]]:
        """The renaming by module prefix (``B1.`` -> ``blocks.0.``), shortest description first."""
        renames: dict[str, str] = {}
        for src, dst in self.mapping.items():
            s, d = src.split(".")[:-1], dst.split(".")[:-1]
            for depth in range(1, min(len(s), len(d)) + 1):
                if s[depth - 1] != d[depth - 1] and len(s) == len(d):
                    renames.setdefault(".".join(s[:depth]), ".".join(d[:depth]))
        return sorted(renames.items(), key=lambda kv: _natural(kv[0]))


@cache
def _template(arch: str, scale: int) -> tuple[_Node, frozenset[str]] | None:
    """The key tree of ``arch``'s tiny configuration at ``scale`` (built on the meta device: no memory, no init
    cost). Scales can differ in structure (x4 upsamplers have two stages), so each is a template."""
    spec = all_archs()[arch]
    try:
        with torch.device("meta"):
            model = create_model(arch, **{**spec.tiny, "scale": scale})
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    except Exception:  # noqa: BLE001 - an architecture whose template cannot be built is skipped
        return None
    return _tree(shapes), frozenset(k.rsplit(".", 1)[-1] for k in shapes)


def _nearly(matcher: _Matcher, tmpl: _Node, tree: _Node) -> bool:
    """All but one of the template's top-level modules have a counterpart in the file (scales differ in one place,
    the upsampler), so the template of another scale is worth building."""
    missing = sum(1 for t in tmpl.children.values() if not any(matcher.match(t, f) is not None
                                                                 for f in tree.children.values()))
    return missing <= 1 and set(tmpl.leaves) == set(tree.leaves)


def structural_matches(state_dict: StateDict) -> list[StructuralMatch]:
    """Every architecture whose structure the state dict has, with the config that fits it exactly."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    tree = _tree(shapes)
    sorted_file = list(shapes) == sorted(shapes)
    leaf_names = frozenset(k.rsplit(".", 1)[-1] for k in shapes)
    found = []
    for arch, spec in sorted(all_archs().items()):
        if spec.detect is None:
            continue
        tried: set[tuple[tuple[str, str], ...]] = set()
        for scale in spec.scales:
            template = _template(arch, scale)
            if template is None or not leaf_names <= template[1]:
                break  # the first scale's template says enough: the other scales are not built
            matcher = _Matcher(sorted_file)
            mapping = matcher.match(template[0], tree)
            if mapping is None and not _nearly(matcher, template[0], tree):
                break  # more than the upsampler differs: other scales (costly to build) cannot fit either
            if mapping is None or len(mapping) != len(shapes) or tuple(mapping.items()) in tried:
                continue
            tried.add(tuple(mapping.items()))
            translated = {mapping[k]: v for k, v in state_dict.items()}
            try:
                proposal = spec.detect(translated)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                proposal = None
            if proposal is not None and fits(arch, proposal, translated):
                found.append(StructuralMatch(arch, dict(proposal), mapping))
                break
    return found


def remap(state_dict: StateDict, match: StructuralMatch) -> dict[str, torch.Tensor]:
    """The state dict under the architecture's own key names."""
    return {match.mapping[k]: v for k, v in state_dict.items()}
