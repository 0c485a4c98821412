"""Kubernetes resource quantities ("500m", "2Gi", "1e3") as exact numbers, for comparisons."""

from __future__ import annotations

import re
from decimal import Decimal

from tftj.api.models import QUANTITY_PATTERN

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_SPLIT = re.compile(r"^\+?(?P<number>[0-9.]+(?:[eE][+-]?[0-9]+)?)(?P<suffix>[A-Za-z]*)$")
_VALID = re.compile(QUANTITY_PATTERN)


def parse_quantity(text: str) -> Decimal | None:
    """The quantity's value in base units (cores, bytes); None if it is not a quantity."""
    if not _VALID.match(text):
        return None
    match = _SPLIT.match(text)
    if match is None or match["suffix"] not in _SUFFIX:
        return None
    try:
        return Decimal(match["number"]) * _SUFFIX[match["suffix"]]
    except ArithmeticError:  # InvalidOperation, Overflow ("1E1000000"): not a usable amount
        return None
