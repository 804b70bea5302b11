"""The shipped weights on disk: names, their JSON records and checksums.

Kept apart from `regressor` (which needs torch) so that a process which only has
to name or check a model, like the `chibi batch` driver pinning the weights a
job uses, does not pay torch's import (~0.8 s on 2 cores, while its workers start).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .errors import ChibiError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "chibinet-mcer"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_name(name: str, weights_dir: Path) -> str:
    """'default' -> the name in weights/default.txt (or DEFAULT_MODEL)."""
    if name == "default":
        pointer = weights_dir / "default.txt"
        return pointer.read_text().strip() if pointer.exists() else DEFAULT_MODEL
    return name


def weights_info(name: str = "default", weights_dir: str | Path | None = None) -> dict[str, Any]:
    """The JSON record shipped next to a weights file."""
    directory = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    name = resolve_name(name, directory)
    meta_path = directory / f"{name}.json"
    if not meta_path.exists():
        raise ChibiError(
            "model_unavailable", f"no weights named {name!r} in {directory} (run `chibi train`)"
        )
    return json.loads(meta_path.read_text())


def verified_weights(name: str, weights_dir: Path) -> tuple[Path, dict[str, Any]]:
    """(the weights file, its JSON record) for weights named `name`, the file's sha256
    checked against the record's.

    Raises ChibiError('model_unavailable') when the files are missing and
    ChibiError('weights_checksum') when the file does not match its recorded digest.
    """
    meta = weights_info(name, weights_dir)
    path = Path(weights_dir) / meta["file"]
    if not path.exists():
        raise ChibiError("model_unavailable", f"weights file {path} is missing")
    actual = sha256_file(path)
    if actual != meta["sha256"]:
        raise ChibiError(
            "weights_checksum",
            f"{path.name}: sha256 {actual[:16]}... does not match the recorded "
            f"{meta['sha256'][:16]}...; the file is corrupt or was modified",
        )
    return path, meta
