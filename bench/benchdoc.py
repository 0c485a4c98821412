"""docs/benchmarks.md is shared by every benchmark: each one owns one `## ` section of it."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(heading: str, body: str, doc: Path = DOC) -> Path:
    """Replace the section titled `heading` (e.g. "## Trainer") with `body`, or append it.

    `body` may start with the heading itself; other sections are left exactly as they are.
    """
    body = body.strip()
    if body.startswith(heading):
        body = body[len(heading) :].strip()
    section = f"{heading}\n\n{body}\n"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text.rstrip() + "\n")
    return doc
