"""`chibi inspect`: statistics of a .glb / .vrm file and its VRChat performance rank."""

from __future__ import annotations

import argparse
import json

HELP = "Print triangles, materials, bones, morph targets, texture memory and VRChat ranks."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help=".glb or .vrm file")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def run(args: argparse.Namespace) -> int:
    from exporters.inspect import format_report, inspect_file
    from server.commands.preview import read_input

    stats = inspect_file(read_input(args.input))
    print(json.dumps(stats, indent=2) if args.json else format_report(stats))
    return 0
