"""What `chibi batch` reads and where it writes: listing the inputs (a folder or a list
file), refusing entries that would read outside the input's base, and mapping each
input to a sanitised, collision-free path inside OUTPUT that no symbolic link can
redirect.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from avatar3d.errors import ChibiError
from avatar3d.photo_formats import PHOTO_SUFFIXES

OUTPUT_EXTENSIONS = {"glb": ".glb", "vrm1": ".vrm", "vrm0": ".vrm"}
MAX_NAME_BYTES = 150  # per sanitised path component, leaves room for suffixes under 255


@dataclass(frozen=True)
class Item:
    """One input. key: its path relative to the input's base (POSIX), the ledger key;
    path: the absolute path workers read; output: OUTPUT-relative path of the
    first face's file; refused: why the entry is not read at all (None if read)."""

    key: str
    path: str
    output: str
    refused: str | None = None


_UNSAFE_CHARS = re.compile(r"[^\w\-. +@()\[\],]")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)
}


def sanitize_name(name: str) -> str:
    """One path component made safe on every common file system.

    Letters and digits of any script and ``- . + @ ( ) [ ] ,`` space and ``_`` stay;
    everything else (separators, control characters, ``~ : * ? " < > |``...)
    becomes ``_``. Leading dots (hidden names, ``..``) and trailing dots/spaces
    are removed, Windows device names get a ``_`` prefix, and the result is cut
    to MAX_NAME_BYTES of UTF-8. Never empty. ``~`` never survives, so the
    ``NAME~N`` names of extra faces cannot collide with another input's name.
    """
    name = _UNSAFE_CHARS.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    name = name.encode()[:MAX_NAME_BYTES].decode(errors="ignore").strip(" .") or "_"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name


def face_output_path(output: str, face: int) -> str:
    """OUTPUT-relative path of face number `face` (0 = largest): NAME.vrm, NAME~1.vrm..."""
    if face == 0:
        return output
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}~{face}{path.suffix}"))


def preview_path(output: str) -> str:
    """The preview PNG written next to an avatar file: NAME.vrm -> NAME.preview.png."""
    path = PurePosixPath(output)
    return str(path.with_name(f"{path.stem}.preview.png"))


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _map_outputs(keys: list[str], extension: str) -> list[str]:
    """Input keys -> unique OUTPUT-relative paths (unique ignoring case, for macOS/Windows).

    a/b.jpg -> a/b.vrm. When several inputs would share a name (b.jpg and b.png,
    or names equal after sanitising) each keeps its old extension (b_jpg.vrm,
    b_png.vrm), then a number is added if that is still taken (by a file or a folder).
    """

    def first_choice(key: str) -> tuple[list[str], str, str]:
        parts = PurePosixPath(key).parts
        folders = [sanitize_name(p) for p in parts[:-1]]
        return folders, sanitize_name(PurePosixPath(parts[-1]).stem), parts[-1]

    wanted = [first_choice(key) for key in keys]
    counts: dict[str, int] = {}
    for folders, stem, _ in wanted:
        lowered = "/".join([*folders, stem]).lower()
        counts[lowered] = counts.get(lowered, 0) + 1
    # an input folder named like another input's file (a.jpg beside a.vrm/b.jpg) keeps
    # its name: the file takes another
    taken = {
        "/".join(folders[:depth]).lower()
        for folders, _, _ in wanted
        for depth in range(1, len(folders) + 1)
    }
    outputs = []
    for folders, stem, filename in wanted:
        candidates = [stem] if counts["/".join([*folders, stem]).lower()] == 1 else []
        alternative = sanitize_name(filename.replace(".", "_"))
        candidates += [alternative] + [f"{alternative}_{n}" for n in range(2, len(keys) + 2)]
        for candidate in candidates:
            path = "/".join([*folders, candidate + extension])
            if path.lower() not in taken:
                taken.add(path.lower())
                outputs.append(path)
                break
    return outputs


def _folder_entries(root: str, exclude: str | None) -> list[tuple[str, str, str | None]]:
    """(key, path, refusal) for every image file under `root`, sorted; hidden names and
    the `exclude` folder are skipped, folder symlinks are not followed."""
    entries = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and os.path.join(folder, d) != exclude
        )  # fmt: skip
        for name in sorted(filenames):
            if name.startswith(".") or not name.lower().endswith(PHOTO_SUFFIXES):
                continue
            path = os.path.join(folder, name)
            key = PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()
            refusal = None
            if os.path.islink(path) and not _inside(os.path.realpath(path), root):
                refusal = "a symbolic link to a file outside INPUT"
            entries.append((key, path, refusal))
    return entries


def _list_entries(list_file: str, base: str, output: str) -> list[tuple[str, str, str | None]]:
    """(key, path, refusal) for every line of a list file (blank and '#' lines skipped).

    Relative lines are taken from `base`. Refused: a file inside `output` (the job
    could overwrite it), a '..' component, an absolute
    path outside `base`, a path that leaves `base` through a symbolic link, NUL.
    A path listed twice is converted once.
    """
    try:
        with open(list_file, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ChibiError("invalid_input", f"{list_file} is not a UTF-8 text file") from None
    except OSError as exc:
        raise ChibiError("invalid_input", f"cannot read {list_file}: {exc.strerror}") from None
    lexical_base = os.path.abspath(base)
    entries, seen = [], set()
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        refusal, rel = None, os.path.normpath(entry)
        if "\x00" in entry:
            refusal = "contains a NUL character"
        elif ".." in PurePosixPath(entry).parts:
            refusal = "contains a '..' component"
        elif os.path.isabs(entry):
            inside = [b for b in (base, lexical_base) if _inside(rel, b)]
            if inside:
                rel = os.path.relpath(rel, inside[0])
            else:
                refusal = f"an absolute path outside the list's base {base}"
        if refusal is None and rel in (".", ""):
            refusal = "not a file name"
        real = os.path.realpath(os.path.join(base, rel)) if refusal is None else ""
        if refusal is None and not _inside(real, base):
            refusal = "leaves the list's base through a symbolic link"
        elif refusal is None and _inside(real, output):
            refusal = "inside OUTPUT, where the job writes"
        key = entry if refusal else PurePosixPath(*Path(rel).parts).as_posix()
        if key not in seen:
            seen.add(key)
            entries.append((key, os.path.join(base, rel) if refusal is None else "", refusal))
    return entries


def plan_inputs(
    input_path: str | os.PathLike, output_dir: str | os.PathLike, fmt: str,
    base: str | os.PathLike | None = None,
) -> list[Item]:  # fmt: skip
    """The job's inputs and their output paths (see the module docstring).

    input_path: a folder (walked recursively for PHOTO_SUFFIXES) or a text file
    with one path per line; base: the folder a list's relative paths start from
    and that every listed photo must be inside (default: the list file's folder).
    Raises ChibiError invalid_input / invalid_output for a job that cannot start.
    """
    if fmt not in OUTPUT_EXTENSIONS:
        raise ChibiError("invalid_input", f"unknown format {fmt!r}")
    source = os.path.realpath(input_path)
    output = os.path.realpath(output_dir)
    if not os.path.exists(source):
        raise ChibiError("invalid_input", f"no such file or folder: {input_path}")
    if os.path.isdir(source):
        if base is not None:
            raise ChibiError("invalid_input", "--base applies to list files only")
        if _inside(source, output):
            raise ChibiError("invalid_output", "OUTPUT must not be INPUT or a folder above it")
        entries = _folder_entries(source, exclude=output if _inside(output, source) else None)
    else:
        base_dir = os.path.realpath(base if base is not None else os.path.dirname(source))
        if not os.path.isdir(base_dir):
            raise ChibiError("invalid_input", f"base is not a folder: {base}")
        entries = _list_entries(source, base_dir, output)
    keys = [key for key, _, refusal in entries if refusal is None]
    outputs = dict(zip(keys, _map_outputs(keys, OUTPUT_EXTENSIONS[fmt]), strict=True))
    return [Item(key, path, outputs.get(key, ""), refusal) for key, path, refusal in entries]


def output_file(root: Path, rel: str) -> Path:
    """OUTPUT/rel with its folders created; refuses to pass through any symbolic link,
    so a link planted inside OUTPUT cannot redirect a write outside it."""
    folder = root
    for part in PurePosixPath(rel).parts[:-1]:
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ChibiError("unsafe_path", f"{folder} is a symbolic link or not a folder")
        folder.mkdir(exist_ok=True)
    return folder / PurePosixPath(rel).name
