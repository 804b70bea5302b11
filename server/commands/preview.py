"""`chibi preview`: render a PNG preview (front and 3/4 views) of a .glb / .vrm file."""

from __future__ import annotations

import argparse
import sys

HELP = "Render a PNG preview (front and 3/4 views) of a .glb or .vrm file."

MAX_INPUT_BYTES = 256 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help=".glb or .vrm file")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png", help="PNG to write")
    parser.add_argument(
        "--size", type=int, default=512, help="pixel height of each view (default 512)"
    )


def run(args: argparse.Namespace) -> int:
    from avatar3d.errors import ChibiError
    from exporters.file_preview import render_file_preview
    from exporters.preview import MAX_SIZE
    from server.commands.avatar import write_atomic

    if not 16 <= args.size <= MAX_SIZE:
        raise ChibiError("invalid_option", f"--size must be in [16, {MAX_SIZE}]")
    data = read_input(args.input)
    png = render_file_preview(data, args.size)
    write_atomic(args.output, png)
    print(f"wrote {args.output} ({2 * args.size}x{args.size})", file=sys.stderr)
    return 0


def read_input(path: str) -> bytes:
    """The bytes of a model file; too large or unreadable files raise ChibiError."""
    from avatar3d.errors import ChibiError

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ChibiError("io_error", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ChibiError("invalid_model", f"{path} is larger than {MAX_INPUT_BYTES >> 20} MiB")
    return data
