"""`chibi convert PHOTO -o OUT`: the whole pipeline, face photo -> glb / VRM file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from server.commands.avatar import (
    FORMATS,
    QUALITIES,
    add_thumbnail_argument,
    numbered_path,
    output_format,
    write_atomic,
)
from server.commands.params import read_photo

HELP = "Convert a face photo to a rigged chibi avatar file (glb, VRM 1.0 or VRM 0.x)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="image file (JPEG, PNG, WebP, BMP, GIF, HEIC/HEIF, AVIF)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    parser.add_argument(
        "--format", choices=FORMATS,
        help="output format (default: from the output name, .vrm -> vrm1, otherwise glb)",
    )  # fmt: skip
    parser.add_argument(
        "--all-faces", action="store_true",
        help="one file per face: OUT for the largest, then OUT_1, OUT_2... (largest first)",
    )  # fmt: skip
    parser.add_argument("--quality", choices=QUALITIES, default="default", help="mesh budget")
    add_thumbnail_argument(parser)
    parser.add_argument("--model", default="default", help="weights name (default: shipped)")


def output_paths(output: str | Path, count: int) -> list[Path]:
    """OUT, OUT_1, OUT_2... (suffix before the extension) for `count` faces."""
    return [numbered_path(output, item) for item in range(count)]


def run(args: argparse.Namespace) -> int:
    fmt = output_format(args.output, args.format)
    data = read_photo(args.photo)
    from avatar3d.build import build_avatar
    from avatar3d.pipeline import PhotoPipeline
    from exporters import export_file

    start = time.perf_counter()
    results = PhotoPipeline(args.model).analyze(data, all_faces=args.all_faces)
    # build and export every face before writing anything: all files or none
    blobs = []
    for result in results:
        avatar = build_avatar(result.params, quality=args.quality)
        blobs.append(export_file(avatar, fmt, args.thumbnail))
    for path, blob in zip(output_paths(args.output, len(blobs)), blobs, strict=True):
        write_atomic(path, blob)
        print(f"wrote {path} ({fmt}, {len(blob) / 2**20:.2f} MiB)", file=sys.stderr)
    print(f"{len(blobs)} face(s) in {time.perf_counter() - start:.2f} s", file=sys.stderr)
    return 0
