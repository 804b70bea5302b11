"""`chibi batch INPUT OUTPUT`: convert a folder (or a list) of photos to avatars, resumably."""

from __future__ import annotations

import argparse
import os
import sys

from avatar3d.errors import ChibiError
from server.commands.avatar import add_thumbnail_argument

HELP = "Convert a folder (or a list file) of face photos to avatar files; resumable."

EPILOG = """\
INPUT is a folder (searched recursively for .jpg .jpeg .png .webp .bmp .gif .heic
.heif .avif, in any case; hidden names skipped, folder symlinks not followed) or a
UTF-8 text file with one photo path per line ('#' comments). OUTPUT mirrors INPUT's
relative paths with the new extension (a/b.jpg -> OUTPUT/a/b.vrm; extra faces
b~1.vrm...; previews b.preview.png), names sanitised. List entries with '..', absolute
paths outside the base, or symlinks leading out of it are refused (failure code
unsafe_path).

OUTPUT/manifest.jsonl gets a line per converted photo, OUTPUT/failures.jsonl one per
failed photo (with its error code). Rerun the same command to resume: finished photos
are skipped (checked by sha256 of the photo and of the outputs on disk).

Exit status: 0 all converted; 1 some photos failed (see failures.jsonl);
2/3 the job could not run; 130 interrupted (rerun to resume)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", metavar="INPUT", help="folder of photos, or a list file")
    parser.add_argument("output", metavar="OUTPUT", help="folder for the avatars (created)")
    parser.add_argument("--format", choices=("vrm1", "vrm0", "glb"), default="vrm1")
    parser.add_argument("--quality", choices=("default", "high"), default="default")
    parser.add_argument("--preview", action="store_true", help="also write NAME.preview.png")
    parser.add_argument("--all-faces", action="store_true", help="one avatar per face")
    add_thumbnail_argument(parser)
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes / Ray actors"
        " (default: the cores here; with --address, the cluster's CPUs)",
    )
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--address", metavar="RAY_ADDRESS", help="join this Ray cluster "
                        "(--engine ray; default: start a local Ray)")  # fmt: skip
    parser.add_argument(
        "--base",
        metavar="DIR",
        help="for a list file: the folder its paths "
        "are relative to and must stay inside (default: the list's folder)",
    )
    parser.add_argument("--retry-failed", action="store_true",
                        help="also redo photos that failed before (no_face...)")  # fmt: skip
    parser.add_argument("--model", default="default", help="weights name (default: shipped)")
    parser.add_argument("--weights-dir", default=os.environ.get("CHIBI_WEIGHTS_DIR", ""),
                        metavar="DIR", help="folder of the weights, e.g. from chibi train "
                        "--out (default: $CHIBI_WEIGHTS_DIR, else the shipped ones)")  # fmt: skip
    parser.add_argument("--chunk", type=int, default=2, metavar="K",
                        help="photos per worker task (default: 2)")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from server.batch import JobOptions, run_batch

    if args.workers is not None and args.workers < 1:
        raise ChibiError("invalid_input", "--workers must be at least 1")
    if args.chunk < 1:
        raise ChibiError("invalid_input", "--chunk must be at least 1")
    if args.address and args.engine != "ray":
        raise ChibiError("invalid_input", "--address needs --engine ray")
    options = JobOptions(
        args.format,
        args.quality,
        args.all_faces,
        args.preview,
        args.model,
        args.weights_dir,
        thumbnail=args.thumbnail,
    )
    try:
        summary = run_batch(
            args.input, args.output, options, engine=args.engine, workers=args.workers,
            address=args.address, base=args.base, retry_failed=args.retry_failed,
            chunk=args.chunk, progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:  # while listing or checking earlier work: nothing was lost
        print("chibi batch: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    rate = summary.converted / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    codes = ", ".join(f"{code} {n}" for code, n in sorted(summary.codes.items()))
    print(
        f"chibi batch: {summary.total} inputs: {summary.converted} converted, "
        f"{summary.failed} failed{f' ({codes})' if codes else ''}, "
        f"{summary.skipped_ok + summary.skipped_failed} already done "
        f"({summary.skipped_ok} converted, {summary.skipped_failed} failed) "
        f"in {summary.elapsed_s:.1f} s ({rate:.2f} photos/s)",
        file=sys.stderr,
    )
    if summary.temp_removed:
        print(f"chibi batch: removed {summary.temp_removed} temporary file(s) of an "
              "interrupted run", file=sys.stderr)  # fmt: skip
    print(f"chibi batch: manifest {summary.output}/manifest.jsonl, "
          f"failures {summary.output}/failures.jsonl", file=sys.stderr)  # fmt: skip
    if summary.interrupted:
        remaining = summary.total - summary.accounted
        print(f"chibi batch: interrupted, {remaining} input(s) left; run the same command "
              "again to resume", file=sys.stderr)  # fmt: skip
        return 130
    return 1 if summary.failed or summary.skipped_failed else 0
