"""Problems found in a manifest: what validate() returns and every front end prints.

A problem is a field path plus a message that says what is allowed and what was given
(`spec.training.learningRate: must be > 0 and <= 10, got -1`). Errors reject the manifest;
warnings are legal-but-risky values (the webhook returns them as admission warnings).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    path: str  # e.g. "spec.training.learningRate", "spec.model.hiddenUnits[1]", "" for the document
    message: str
    severity: Severity = "error"
    rule: str = ""  # the tftj.api.rules function that found it ("" for schema problems)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def error(path: str, message: str) -> Problem:
    return Problem(path, message, "error")


def warning(path: str, message: str) -> Problem:
    return Problem(path, message, "warning")


@dataclass(frozen=True)
class ValidationReport:
    errors: Sequence[Problem] = field(default_factory=tuple)
    warnings: Sequence[Problem] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.errors

    @staticmethod
    def of(problems: Iterable[Problem]) -> ValidationReport:
        found = list(problems)
        return ValidationReport(
            errors=tuple(p for p in found if p.severity == "error"),
            warnings=tuple(p for p in found if p.severity == "warning"),
        )


def format_loc(loc: Sequence[str | int]) -> str:
    """("spec", "model", "hiddenUnits", 1) -> "spec.model.hiddenUnits[1]"."""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
    return out


def _normal(word: str) -> str:
    return word.replace("_", "").replace("-", "").lower()


def closest(given: str, choices: Iterable[str]) -> str | None:
    """The choice the user most likely meant: same word ignoring case/_/-, else difflib's best."""
    options = list(choices)
    for option in options:
        if _normal(option) == _normal(given):
            return option
    import difflib  # only needed on the error path

    by_normal = {_normal(option): option for option in options}
    match = difflib.get_close_matches(_normal(given), list(by_normal), n=1, cutoff=0.6)
    return by_normal[match[0]] if match else None


def did_you_mean(given: str, choices: Iterable[str]) -> str:
    """ " (did you mean 'batchSize'?)" or "" when nothing is close."""
    match = closest(given, choices)
    return f" (did you mean '{match}'?)" if match else ""
