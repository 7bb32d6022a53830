"""YAML and config objects that cannot explode: alias expansion is bounded before anything walks,
validates or formats the data.

A 400-byte YAML file with nested aliases (a "billion laughs") describes ~10^9 nodes. PyYAML
builds it cheaply as shared objects, but everything that walks the result (schema validation, the
``repr`` of an item in an error message) expands it and runs out of memory. ``load_yaml``
composes the node graph, counts the nodes it expands to (memoised per node: linear in the file's
size) and refuses more than ``MAX_ALIAS_NODES`` nodes repeated by aliases, or an alias inside
itself, before constructing anything. ``check_expansion`` does the same for an object graph that
someone else loaded (the config Snakemake hands to the Snakefile). ``short_repr`` formats a
value with a bounded length whatever its size.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from pathlib import Path

import yaml

from .errors import UserError

# libyaml when PyYAML has it: 5-10x faster (the Snakefile reads every YAML category at start)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# nodes that aliases may add beyond the document's own nodes: far above any anchor reuse in a
# config or texts file, far below anything that costs memory or time to walk
MAX_ALIAS_NODES = 10_000

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 6
_REPR.maxlevel = 3


def short_repr(value: object, limit: int = 120) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters, in time bounded by the cut (never
    the whole of a huge or self-referencing value)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AliasBombError(UserError):
    """A YAML document or config whose aliases expand beyond the bound (or into themselves)."""


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _container_children(value) -> list:
    if isinstance(value, Mapping):
        return [part for item in value.items() for part in item]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return []


def _expanded_size(root, children, limit: int) -> tuple[int, int]:
    """(nodes, nodes after expanding every shared container at each place it is used), the
    second capped just above ``limit``. Leaves (scalars) count once per place they appear, so
    shared leaves (small ints, interned strings) never look like expansion. Raises ValueError
    for a container that contains itself."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    distinct = 0
    if not children(root):
        return 1, 1
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = children(node)
        if done:
            on_path.discard(key)
            total = 1
            for kid in kids:
                kid_size = sizes.get(id(kid))
                if kid_size is None:  # a leaf
                    total += 1
                    distinct += 1
                else:
                    total += kid_size
            sizes[key] = min(limit + 1, total)
            distinct += 1
            continue
        if key in sizes:
            continue
        on_path.add(key)
        stack.append((node, True))
        for kid in kids:
            kid_key = id(kid)
            if kid_key in on_path:
                raise ValueError("recursive")
            if kid_key not in sizes and children(kid):
                stack.append((kid, False))
    return distinct, sizes[id(root)]


def _check(root, children, where: str, fix: str) -> None:
    try:
        distinct, expanded = _expanded_size(root, children, 10**12)
    except ValueError:
        raise AliasBombError(
            f"{where}: a YAML alias refers to a node that contains it (a recursive structure). "
            f"{fix}"
        ) from None
    if expanded - distinct > MAX_ALIAS_NODES:
        shown = f"{expanded:,}" if expanded <= 10**12 else "more than 10^12"
        raise AliasBombError(
            f"{where}: YAML aliases expand {distinct:,} nodes into {shown}; at most "
            f"{MAX_ALIAS_NODES:,} repeated nodes are accepted (a 'billion laughs' document). {fix}"
        )


def load_yaml(text: str | bytes, source: str | Path, fix: str = "Write the values out.") -> object:
    """Parse one YAML document safely, refusing alias bombs and recursive aliases before
    building any object. Syntax errors propagate as ``yaml.YAMLError``."""
    loader = YAML_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # an alias is written '*name': a document without '*' has none to expand
        if ("*" in text) if isinstance(text, str) else (b"*" in text):
            _check(node, _children, str(source), fix)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def check_expansion(value: object, where: str, fix: str) -> None:
    """Refuse an already-loaded object graph (e.g. a config) whose shared parts expand beyond
    the bound, or that contains itself."""
    _check(value, _container_children, where, fix)
