"""Regenerate digits.csv: the 8x8 UCI handwritten digits (1797 images), as scikit-learn ships it.

Usage: python examples/data/make_digits_csv.py [SOURCE]
SOURCE is scikit-learn's sklearn/datasets/data/digits.csv.gz, or a scikit-learn wheel containing
it (`pip download scikit-learn --no-deps -d /tmp/skl`); by default the installed scikit-learn's
copy is used. scikit-learn is not a dependency of tftj: it is only the source of this file.

Output: a header `pixel_0_0,...,pixel_7_7,label` then one row per image, pixel intensities 0..16
as integers and the digit 0..9 as label (tftj's data.labelKey default).
"""

from __future__ import annotations

import csv
import gzip
import sys
import zipfile
from pathlib import Path

MEMBER = "sklearn/datasets/data/digits.csv.gz"
OUT = Path(__file__).with_name("digits.csv")


def read_source(source: str | None) -> bytes:
    if source is None:
        import sklearn  # only needed when regenerating

        return (Path(sklearn.__file__).parent / "datasets/data/digits.csv.gz").read_bytes()
    if source.endswith(".whl"):
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(MEMBER)
    return Path(source).read_bytes()


def main() -> None:
    raw = gzip.decompress(read_source(sys.argv[1] if len(sys.argv) > 1 else None)).decode()
    header = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + ["label"]
    rows = [[str(int(float(v))) for v in line.split(",")] for line in raw.splitlines() if line]
    assert len(rows) == 1797 and all(len(r) == 65 for r in rows), "unexpected digits data"
    with OUT.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {OUT} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
