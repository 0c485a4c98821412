"""Reading manifests: multi-document YAML where duplicate keys are errors, never silently last-wins.

PyYAML keeps the last of two equal keys, so `learningRate: 0.1` followed lower down by
`learningRate: 10` would train with 10 and nobody would see why. Kubernetes' own decoder rejects
duplicates, and so do we, with the field path and both line numbers. Syntax errors carry their line too.
The libyaml-backed parser is used when available, with a lean constructor (_Builder): together
they are what makes `tftj validate` fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from tftj.api.errors import format_loc

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Builder:
    """Composed nodes -> Python values, reporting duplicate keys with their path and lines.

    Does what SafeConstructor does for the plain maps, lists and strings manifests are made of,
    in one recursive pass that also sees every key's line (SafeConstructor's generic machinery
    costs more than libyaml's parse); scalars of other types, `<<:` merges and custom tags are
    handed to SafeConstructor itself, so the values are exactly what yaml.safe_load returns.
    """

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.memo: dict[int, Any] = {}  # anchors/aliases: one node, one value
        self.duplicates: list[LoadError] = []

    def build(self, node: yaml.Node, loc: tuple[str | int, ...]) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            return self.loader.construct_object(node, deep=True)
        memo = self.memo.get(id(node))
        if memo is not None:
            return memo
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            out: list[Any] = []
            self.memo[id(node)] = out
            out.extend(self.build(item, (*loc, i)) for i, item in enumerate(node.value))
            return out
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: tuple[str | int, ...]) -> Any:
        if any(key.tag == _MERGE for key, _ in node.value):
            return self.loader.construct_object(node, deep=True)  # rare: let PyYAML merge
        out: dict[Any, Any] = {}
        self.memo[id(node)] = out
        lines: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = self.build(key_node, loc)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(key)
            except TypeError:  # an unhashable (complex) key: PyYAML's own error
                return self.loader.construct_object(node, deep=True)
            if first is not None:
                self.duplicates.append(
                    LoadError(
                        -1,
                        line,
                        f"duplicate key (first at line {first})",
                        format_loc((*loc, str(key))),
                    )
                )
            lines[key] = line
            out[key] = self.build(value_node, (*loc, str(key)))
        return out


@dataclass(frozen=True)
class Document:
    index: int  # 0-based position in the file
    data: Any
    # The composed YAML, kept to point problems at their line (see line_of); not compared.
    node: yaml.Node | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LoadError:
    index: int  # the document being read when the error occurred
    line: int | None  # 1-based
    message: str
    path: str = ""  # the field, when the problem is one key (a duplicate)

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{self.path}: {where}{self.message}" if self.path else where + self.message


def _describe(exc: yaml.YAMLError, index: int) -> LoadError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}, {problem}" if context else str(problem)
    return LoadError(index, mark.line + 1 if mark is not None else None, f"YAML: {message}")


def iter_documents(text: str | bytes) -> Iterator[Document | LoadError]:
    """Every document of a YAML stream, or a LoadError in its place.

    A document with duplicate keys is reported and the stream goes on; a syntax error ends it
    (the parser cannot resume after one).
    """
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            builder = _Builder(loader)
            data = builder.build(node, ()) if node is not None else None
            if builder.duplicates:
                yield from (replace(dup, index=index) for dup in builder.duplicates)
            else:
                yield Document(index, data, node)
            index += 1
    except yaml.YAMLError as exc:
        yield _describe(exc, index)
    finally:
        loader.dispose()


def load_one(text: str | bytes) -> Any:
    """The single document of `text`; raises ValueError with the line for any YAML problem."""
    docs = [
        doc for doc in iter_documents(text) if isinstance(doc, LoadError) or doc.data is not None
    ]
    for doc in docs:
        if isinstance(doc, LoadError):
            raise ValueError(str(doc))
    if len(docs) != 1:
        raise ValueError(f"expected one YAML document, found {len(docs)}")
    assert isinstance(docs[0], Document)
    return docs[0].data


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def line_of(node: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of a field path like spec.model.hiddenUnits[1] in a composed document.

    A missing field points at its nearest present parent (where it should be added).
    """
    line = None
    for key, index in _PATH_PART.findall(path):
        if isinstance(node, yaml.MappingNode) and key:
            found = next((kv for kv in node.value if kv[0].value == key), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            node = node.value[int(index)]
            line = node.start_mark.line + 1
        else:
            break
    return line
