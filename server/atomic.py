"""Atomic file writes shared by the CLI and the batch job."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# Temporary files are `.NAME.<random>.chibi-tmp` beside their target, so a job
# restarted after a crash can find and remove what a killed writer left.
TMP_SUFFIX = ".chibi-tmp"


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Readers see the old file or the whole new one: temp name in the same folder, fsync,
    rename, fsync the folder. Raises OSError; no temporary file is left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
