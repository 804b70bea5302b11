"""`chibi params PHOTO`: predict AvatarParams from a face photo and print them as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from avatar3d.errors import ChibiError

HELP = "Predict avatar parameters from a face photo (CNN + landmark teacher) and print JSON."

MAX_PHOTO_BYTES = 20_000_000  # the decoder's own limit; checked before reading it all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="image file (JPEG, PNG, WebP, BMP, GIF, HEIC/HEIF, AVIF)")
    parser.add_argument("--all-faces", action="store_true", help="a JSON list, one per face")
    parser.add_argument("--model", default="default", help="weights name (default: shipped)")
    parser.add_argument(
        "--sources", action="store_true",
        help="also print, per field, whether the CNN or the landmark teacher supplied it",
    )  # fmt: skip


def read_photo(path: str) -> bytes:
    """The photo's bytes; unreadable paths are ChibiError('invalid_image'), missing ones
    FileNotFoundError (the CLI answers both without a traceback)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PHOTO_BYTES + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except OSError as exc:  # a directory, no permission...
        raise ChibiError("invalid_image", f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_PHOTO_BYTES:
        raise ChibiError("image_too_large", f"{path} is larger than {MAX_PHOTO_BYTES} bytes")
    return data


def run(args: argparse.Namespace) -> int:
    data = read_photo(args.photo)
    from avatar3d.pipeline import PhotoPipeline

    pipeline = PhotoPipeline(args.model)
    results = pipeline.analyze(data, all_faces=args.all_faces)
    records = []
    for result in results:
        record = result.params.to_dict()
        if args.sources:
            record = {"params": record, "sources": result.sources(pipeline.fusion)}
        records.append(record)
    print(json.dumps(records if args.all_faces else records[0], indent=2))
    if args.all_faces:
        print(f"{len(records)} face(s)", file=sys.stderr)
    return 0
