"""`chibi avatar`: build an avatar from a params file and write it as glb / VRM 1.0 / VRM 0.x."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from pathlib import Path

from avatar3d.errors import ChibiError
from avatar3d.params import AvatarParams, ParamsError
from server import atomic

HELP = "Build a chibi avatar (from a params JSON file, or the defaults) and write glb / VRM."

FORMATS = ("glb", "vrm1", "vrm0")
QUALITIES = ("default", "high")
MAX_PARAMS_BYTES = 1 << 20  # a params file is a few hundred bytes; refuse anything absurd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", metavar="P.json", help="AvatarParams JSON (default: defaults)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: from the output name, .vrm -> vrm1, otherwise glb)",
    )
    parser.add_argument("--quality", choices=QUALITIES, default="default", help="mesh budget")
    add_thumbnail_argument(parser)
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")


def add_thumbnail_argument(parser: argparse.ArgumentParser) -> None:
    """`--no-thumbnail` (args.thumbnail False), shared by every command that writes VRM."""
    parser.add_argument(
        "--no-thumbnail", dest="thumbnail", action="store_false",
        help="VRM without its 1024 px thumbnail image (about half the time; glb has none)",
    )  # fmt: skip


def load_params(path: str | None) -> AvatarParams:
    """Read and validate a params file; every failure is a ParamsError naming the field."""
    if path is None:
        return AvatarParams()
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise ParamsError("--params", f"no such file: {path}") from None
    except OSError as exc:
        raise ParamsError("--params", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_PARAMS_BYTES:
        raise ParamsError("--params", f"file is larger than {MAX_PARAMS_BYTES} bytes")
    return AvatarParams.from_json(raw)


def check_output(path: str | os.PathLike) -> None:
    """ChibiError("io_error") unless `path` can be written: a file name, not a folder's,
    in a folder that exists (checked before long work, as well as at the write)."""
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise ChibiError("io_error", f"the output needs a file name, got {str(path)!r}")
    if target.is_dir():
        raise ChibiError("io_error", f"the output {target} is a folder")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ChibiError("io_error", f"output folder does not exist: {folder}")


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """`server.atomic.write_atomic` for the CLI: failures become ChibiError("io_error").

    A device or a pipe (`-o /dev/stdout`, a FIFO) is written into, not replaced: run as
    root, the rename put a file where /dev/null was."""
    target = Path(path)
    check_output(target)
    try:
        mode = os.stat(target).st_mode  # through links: /dev/stdout is one
    except OSError:
        mode = 0
    try:
        if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
            with open(target, "wb") as stream:
                stream.write(data)
        else:
            atomic.write_atomic(target, data)
    except OSError as exc:
        raise ChibiError("io_error", f"cannot write {target}: {exc.strerror or exc}") from None


def output_format(output: str | os.PathLike, chosen: str | None, default: str = "glb") -> str:
    """The format asked for, else the output's suffix (.vrm -> vrm1, .glb -> glb), else default."""
    suffix = Path(output).suffix.lower()
    return chosen or {".vrm": "vrm1", ".glb": "glb"}.get(suffix, default)


def numbered_path(path: str | os.PathLike, item: int) -> Path:
    """One file per face: OUT for the largest (item 0), then OUT_1, OUT_2..."""
    path = Path(path)
    return path if item == 0 else path.with_name(f"{path.stem}_{item}{path.suffix}")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    fmt = output_format(args.output, args.format)
    # heavy imports only now, so `chibi --help` stays fast
    from avatar3d.build import build_avatar
    from exporters import export_file

    start = time.perf_counter()
    avatar = build_avatar(params, quality=args.quality)
    data = export_file(avatar, fmt, args.thumbnail)
    write_atomic(args.output, data)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {args.output} ({fmt}, {len(data) / 2**20:.2f} MiB, "
        f"{avatar.triangle_count:,} triangles) in {elapsed:.2f} s",
        file=sys.stderr,
    )
    return 0
