"""`chibi label DIR -o labels.jsonl`: teacher labels for a folder of photos (for training)."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "Label a folder of face photos with the landmark/colour teacher (for `chibi train --real`)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="folder of photos (searched recursively)")
    parser.add_argument("-o", "--output", required=True, metavar="LABELS.jsonl")
    parser.add_argument(
        "--all-faces", action="store_true", help="label every face, not the largest"
    )


def run(args: argparse.Namespace) -> int:
    from avatar3d.labelling import label_folder
    from server.commands.avatar import check_output, write_atomic

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    check_output(args.output)  # before every photo is analysed, not after
    records = label_folder(args.folder, all_faces=args.all_faces, log=log)
    if not records:  # an empty file would only replace earlier labels
        print(f"chibi label: no face labelled in {args.folder}; nothing written", file=sys.stderr)
        return 1
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    write_atomic(args.output, text.encode())
    print(f"labelled {len(records)} face(s) -> {args.output}", file=sys.stderr)
    return 0
