"""Data files: which files a path names, how each is compressed, and TensorFlow's error texts.

Paths go through tf.io.gfile, so gs:// and s3:// work where the image has the plugins. File
lists are sorted: every worker sees the same order, which sharding and the statistics need.
"""

from __future__ import annotations

import re

from tftj_trainer.exitcodes import DataError

# tf.data's compression_type values by data.compression; `auto` goes by the file name.
COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}
SUFFIXES = {".gz": "GZIP", ".gzip": "GZIP", ".zz": "ZLIB", ".zlib": "ZLIB"}


def expand_paths(pattern: str, what: str) -> list[str]:
    """A file, every file of a directory, or a glob's matches (sorted: same order everywhere).

    A comma-separated list of those is their concatenation, in the order given.
    """
    if "," in pattern:
        return [f for part in pattern.split(",") if part.strip() for f in expand_paths(part, what)]
    import tensorflow as tf

    pattern = pattern.strip()
    gfile = tf.io.gfile
    if gfile.isdir(pattern):
        files = [
            f"{pattern.rstrip('/')}/{name}"
            for name in gfile.listdir(pattern)
            if not name.startswith(".") and not gfile.isdir(f"{pattern.rstrip('/')}/{name}")
        ]
    elif any(char in pattern for char in "*?["):
        files = [f for f in gfile.glob(pattern) if not gfile.isdir(f)]
    elif gfile.exists(pattern):
        files = [pattern]
    else:
        raise DataError(f"{what} {pattern}: no such file or directory")
    if not files:
        raise DataError(f"{what} {pattern}: matches no files")
    return sorted(files)


def compression_of(path: str, setting: str) -> str:
    """tf.data's compression_type for `path` under data.compression."""
    if setting != "auto":
        return COMPRESSION[setting]
    lowered = path.lower()
    return next((kind for suffix, kind in SUFFIXES.items() if lowered.endswith(suffix)), "")


def read_bytes(path: str) -> bytes:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as handle:
        return bytes(handle.read())


_FUNCTION_PREFIX = re.compile(r"^\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\].*$", re.DOTALL)


def tf_message(error: BaseException) -> str:
    """A TensorFlow error's own words, without the kernel name and op decorations."""
    text = str(getattr(error, "message", error))
    text = _OP_SUFFIX.sub("", _FUNCTION_PREFIX.sub("", text))
    return " ".join(text.split()) or type(error).__name__
