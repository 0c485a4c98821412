"""Reading manifests: multi-document YAML where duplicate keys are errors, never silently last-wins.

PyYAML keeps the last of two equal keys, so `learningRate: 0.1` followed lower down by
`learningRate: 10` would train with 10 and nobody would see why. Kubernetes' own decoder rejects
duplicates, and so do we, with both line numbers. Syntax errors carry their line too.
The libyaml-backed loader is used when available: it is what makes `tftj validate` fast.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class DuplicateKeyError(yaml.constructor.ConstructorError):
    pass


class StrictLoader(_Base):  # type: ignore[valid-type,misc]
    """A safe loader that rejects duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<:` merges are resolved by the base class
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # unhashable key: the base class reports it
                continue
            if first is not None:
                raise DuplicateKeyError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        result: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return result


@dataclass(frozen=True)
class Document:
    index: int  # 0-based position in the file
    data: Any


@dataclass(frozen=True)
class LoadError:
    index: int  # the document being read when the error occurred
    line: int | None  # 1-based
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _describe(exc: yaml.YAMLError) -> LoadError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = (
        f"{context}, {problem}" if context and not isinstance(exc, DuplicateKeyError) else problem
    )
    line = mark.line + 1 if mark is not None else None
    return LoadError(
        -1, line, f"YAML: {message}" if not isinstance(exc, DuplicateKeyError) else message
    )


def iter_documents(text: str | bytes) -> Iterator[Document | LoadError]:
    """Every document of a YAML stream; a LoadError ends the stream (the parser cannot resume)."""
    loader = StrictLoader(text)
    index = 0
    try:
        while loader.check_data():
            yield Document(index, loader.get_data())
            index += 1
    except yaml.YAMLError as exc:
        described = _describe(exc)
        yield LoadError(index, described.line, described.message)
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
