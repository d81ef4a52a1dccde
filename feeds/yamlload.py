"""libyaml's safe loading with a lean constructor, giving exactly what `yaml.load` gives.

PyYAML's constructor spends most of a document's load time in generic Python
bookkeeping (per-node dispatch, memo tables, deferred generators) that plain front
matter never needs. Here libyaml still parses and composes the node tree and PyYAML's
resolver still decides every tag (so YAML 1.1 timestamps, booleans and octal stay as
they are); only the common tags are built directly, and any document with something
else (aliases, merge keys, explicit or unknown tags, complex keys, very deep nesting)
is built by PyYAML's own constructor from the same tree. The result is always equal.

Before any of that, `feeds.frontmatter_fast` reads the common front-matter shape in
pure Python, several times faster; whatever it is not sure of comes here.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from feeds import frontmatter_fast

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalars built by PyYAML's own methods: rare enough per document that the call is cheap.
_SCALAR_TAGS = ("null", "bool", "int", "float", "timestamp")


class _Fallback(Exception):
    """This tree needs PyYAML's full constructor (control flow; never escapes the module)."""


class _Loader(_BaseLoader):
    """The safe loader with PyYAML's tag resolution, minus its per-scalar list building."""

    def resolve(self, kind: type[Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)
        if implicit[0]:  # plain: the first character picks the few patterns to try
            for tag, regexp in _RESOLVERS.get(value[:1], _WILDCARD):
                if regexp.match(value):
                    return tag
        return self.DEFAULT_SCALAR_TAG


_WILDCARD = tuple(_Loader.yaml_implicit_resolvers.get(None, []))
_RESOLVERS = {
    first: tuple(resolvers) + _WILDCARD
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    if first is not None
}
_SCALARS: dict[str, Any] = {}


def _scalar_builders() -> dict[str, Any]:
    if not _SCALARS:
        constructor = yaml.constructor.SafeConstructor()
        for name in _SCALAR_TAGS:
            _SCALARS[f"tag:yaml.org,2002:{name}"] = getattr(constructor, f"construct_yaml_{name}")
    return _SCALARS


def load(text: str) -> tuple[Any, int | None]:
    """The document's value, as `yaml.load(text, CSafeLoader)` returns it, and its size.

    The size is the number of values in all its mappings and sequences (what a size
    limit needs), or None when PyYAML's constructor built it and the caller must check
    the tree itself (it may hold shared references made by aliases).
    """
    with suppress(frontmatter_fast.Unsure):  # not inside `except`: errors chain to nothing
        return frontmatter_fast.load(text)
    return load_with_libyaml(text)


def load_with_libyaml(text: str) -> tuple[Any, int | None]:
    """`load` without the fast path: libyaml parses, and the result is built as above."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, 0
        try:
            builder = _Builder()
            return builder.build(node), builder.size
        except (_Fallback, RecursionError):
            return loader.construct_document(node), None
    finally:
        loader.dispose()


class _Builder:
    """Builds one node tree; refuses (falls back) on anything outside the common subset."""

    __slots__ = ("scalars", "seen", "size")

    def __init__(self) -> None:
        self.scalars = _scalar_builders()
        self.seen: set[int] = set()
        self.size = 0

    def build(self, node: Node) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            if node.tag == _STR:
                return node.value
            scalar = self.scalars.get(node.tag)
            if scalar is None:
                raise _Fallback
            return scalar(node)
        if id(node) in self.seen:
            raise _Fallback  # an alias: PyYAML shares the object, and so must we
        self.seen.add(id(node))
        if kind is MappingNode and node.tag == _MAP:
            mapping: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if type(key_node) is not ScalarNode or key_node.tag not in _KEY_TAGS:
                    raise _Fallback  # merge keys, `=` keys, complex keys
                mapping[self.build(key_node)] = self.build(value_node)
            self.size += len(mapping)
            return mapping
        if kind is SequenceNode and node.tag == _SEQ:
            sequence = [self.build(item) for item in node.value]
            self.size += len(sequence)
            return sequence
        raise _Fallback


_KEY_TAGS = frozenset([_STR, *(f"tag:yaml.org,2002:{name}" for name in _SCALAR_TAGS)])
