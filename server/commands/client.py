"""`chibi client`: send a photo (or a params file) to a running server, save the avatar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from server.commands.avatar import add_thumbnail_argument

HELP = "convert a photo (or params file) through a running `chibi serve`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", nargs="?", help="face photo (JPEG/PNG...); omit with --params")
    parser.add_argument("-o", "--output", required=True, help="where to write the .vrm/.glb")
    parser.add_argument(
        "--url", default=None, help="server URL (default $CHIBI_URL or ws://127.0.0.1:8765/ws)"
    )
    parser.add_argument("--params", help="AvatarParams JSON file to send instead of a photo")
    parser.add_argument(
        "--format",
        choices=("glb", "vrm1", "vrm0"),
        help="default from the output suffix: .glb -> glb, .vrm -> vrm1",
    )
    parser.add_argument("--quality", choices=("default", "high"), default="default")
    parser.add_argument(
        "--all-faces", action="store_true", help="one avatar per face: OUT, OUT_1, OUT_2..."
    )
    parser.add_argument("--preview", metavar="PNG", help="also save a preview image")
    add_thumbnail_argument(parser)
    parser.add_argument("--params-out", metavar="JSON", help="also save the params used")
    parser.add_argument("--token", help="bearer token (default $CHIBI_TOKEN)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from websockets.exceptions import InvalidHandshake

    from server.client import SyncChibiClient, default_url
    from server.commands.avatar import check_output, load_params, numbered_path, output_format
    from server.commands.params import read_photo

    if (args.photo is None) == (args.params is None):
        print("chibi client: give a PHOTO or --params (one of them)", file=sys.stderr)
        return 2
    output = Path(args.output)
    for path in (args.output, args.preview, args.params_out):  # before the round trip
        if path:
            check_output(path)
    fmt = output_format(output, args.format, default="vrm1")
    request = {
        "format": fmt,
        "quality": args.quality,
        "all_faces": args.all_faces,
        "return_preview": bool(args.preview),
        "return_params": bool(args.params_out),
        "thumbnail": args.thumbnail,
    }
    if args.params:
        # Checked here first: a typo gets its field named without a round trip.
        request["params"] = load_params(args.params).to_dict()
        photo = None
    else:
        photo = read_photo(args.photo)  # sent from memory; never copied anywhere

    def progress(stage: str, message: dict) -> None:
        if not args.quiet:
            print(f"  {stage} ({message.get('elapsed_ms', 0):.0f} ms)", file=sys.stderr)

    token = args.token or os.environ.get("CHIBI_TOKEN")
    url = args.url or default_url()
    try:
        with SyncChibiClient(url, token=token) as client:
            results = client.generate_all(photo, on_progress=progress, **request)
    except (OSError, TimeoutError, InvalidHandshake) as exc:  # ChibiServerError goes to cli.py
        print(f"chibi client: cannot talk to {url}: {exc}", file=sys.stderr)
        return 4
    # Several faces: OUT for the largest, then OUT_1, OUT_2... (as `chibi convert` names them).
    for result in results:
        _write(numbered_path(output, result.item), result.data)
        if args.preview and result.preview is not None:
            _write(numbered_path(Path(args.preview), result.item), result.preview)
        if args.params_out and result.params is not None:
            text = json.dumps(result.params, indent=2) + "\n"
            _write(numbered_path(Path(args.params_out), result.item), text.encode())
        print(
            f"chibi client: wrote {numbered_path(output, result.item)} "
            f"({len(result.data)} bytes, {result.elapsed_s:.2f} s)"
        )
    return 0


def _write(path: Path, data: bytes) -> None:
    """Write atomically: a failed run never leaves a half-written file."""
    from server.commands.avatar import write_atomic

    write_atomic(path, data)
