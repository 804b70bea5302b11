"""`chibi eval`: print the evaluation report of the photo -> params half."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "Evaluate the regressor and the fusion: synthetic error, real photos, stability, fairness."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="weights name (default: shipped)")
    parser.add_argument("--weights-dir", metavar="DIR", help="weights folder")
    parser.add_argument("--cache", metavar="DIR", help="synthetic data cache (.cache/synth)")
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--write-fusion", action="store_true",
                        help="store the measured fusion table next to the weights")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")


def run(args: argparse.Namespace) -> int:
    from avatar3d.evaluate import format_report, report_json, run_evaluation

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_evaluation(args.model, args.weights_dir, args.cache, args.workers,
                            write_fusion=args.write_fusion, log=log)  # fmt: skip
    print(format_report(report))
    if args.json:
        from server.commands.avatar import write_atomic

        write_atomic(args.json, json.dumps(report_json(report), indent=1).encode())
    return 0
