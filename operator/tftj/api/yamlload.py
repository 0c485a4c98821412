"""Reading manifests: multi-document YAML where duplicate keys are errors, never silently last-wins.

PyYAML keeps the last of two equal keys, so `learningRate: 0.1` followed lower down by
`learningRate: 10` would train with 10 and nobody would see why. Kubernetes' own decoder rejects
duplicates, and so do we, with the field path and both line numbers. Syntax errors carry their line too.
The libyaml-backed loader is used when available: it is what makes `tftj validate` fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import yaml

from tftj.api.errors import format_loc

# Duplicates are found on the composed node tree (where keys still have their lines and
# paths), then the same nodes are constructed into Python values: one parse, no second pass.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


def duplicate_keys(node: yaml.Node, loc: tuple[str | int, ...] = ()) -> Iterator[LoadError]:
    """Every key that appears twice in one mapping, located by its field path and line."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<:` merges and complex keys: left to the constructor
            key = key_node.value
            here = (*loc, key)
            first = seen.get(key)
            if first is not None:
                yield LoadError(
                    -1,
                    key_node.start_mark.line + 1,
                    f"duplicate key (first at line {first.start_mark.line + 1})",
                    format_loc(here),
                )
            else:
                seen[key] = key_node
            yield from duplicate_keys(value_node, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from duplicate_keys(item, (*loc, i))


@dataclass(frozen=True)
class Document:
    index: int  # 0-based position in the file
    data: Any


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
            duplicates = list(duplicate_keys(node)) if node is not None else []
            if duplicates:
                yield from (replace(dup, index=index) for dup in duplicates)
            else:
                yield Document(index, loader.construct_document(node) if node else None)
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
