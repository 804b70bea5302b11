"""`chibi train`: train ChibiNet on synthetic renders (+ teacher-labelled photos), save weights."""

from __future__ import annotations

import argparse
import sys

HELP = "Train the ChibiNet regressor (defaults reproduce the shipped weights)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avatar3d.train_recipe import REFINE_AVATARS_MAX, TRAIN_EPOCHS, TrainOptions

    d = TrainOptions()
    parser.add_argument("--model", default=d.model, help="architecture name (factory)")
    parser.add_argument(
        "--name", help="weights name (default: the model's, '-finetuned' with --init)"
    )
    parser.add_argument("--avatars", type=int, default=d.avatars, help="synthetic avatars")
    parser.add_argument("--views", type=int, default=d.views, help="renders per avatar")
    parser.add_argument("--epochs", type=int, help=f"default {TRAIN_EPOCHS} (6 with --init)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument(
        "--lr", type=float, help="peak learning rate (default 3e-3, 1e-3 with --init)"
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="data, augmentation and weights")
    parser.add_argument("--init-seed", type=int, help="initial weights alone (default: --seed)")
    parser.add_argument(
        "--refine-avatars", type=int,
        help="renders the network never sees, to fit the refiners (default: 2x --avatars, at most "
        f"{REFINE_AVATARS_MAX}; 0: the training crops only)",
    )  # fmt: skip
    parser.add_argument("--real", metavar="LABELS.jsonl", help="teacher labels from `chibi label`")
    parser.add_argument("--init", metavar="NAME|FILE.pt", help="start from weights ('default')")
    parser.add_argument(
        "--framing", type=float, default=d.framing,
        help="share of each batch cut by a tight photo edge below the chin, above the forehead "
        "or beside the face (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--skin-margin", type=float, default=d.skin_margin,
        help="the training and refiner renders' skins reach this many Monk swatch steps past "
        "both ends of the scale (default 0)",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint", metavar="FILE",
        help="save the training's state here after every epoch; if FILE exists, a run with "
        "the same options resumes from it (delete it to start afresh)",
    )  # fmt: skip
    parser.add_argument("--out", metavar="DIR", help="weights folder (default: avatar3d/weights)")
    parser.add_argument("--cache", metavar="DIR", help="synthetic data cache (.cache/synth)")
    parser.add_argument("--workers", type=int, default=d.workers, help="render processes")
    parser.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=d.device,
        help="where the network trains (the renders, the refiners and the evaluation stay on "
        "the CPU); the shipped weights were trained on the CPU",
    )  # fmt: skip
    parser.add_argument("--no-eval", action="store_true", help="skip measuring the fusion table")


def run(args: argparse.Namespace) -> int:
    import torch

    from avatar3d.train_recipe import TrainOptions, run_training

    if args.device == "cuda" and not torch.cuda.is_available():
        print("chibi train: --device cuda, but torch sees no GPU here", file=sys.stderr)
        return 2
    options = TrainOptions(
        model=args.model, name=args.name, avatars=args.avatars, views=args.views,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        init_seed=args.init_seed, refine_avatars=args.refine_avatars,
        real=args.real, init=args.init, framing=args.framing,
        skin_margin=args.skin_margin, checkpoint=args.checkpoint,
        out=args.out, cache=args.cache,
        workers=args.workers, threads=args.threads, device=args.device,
    )  # fmt: skip

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        path = run_training(options, log)
    except ValueError as exc:  # the user's input: a checkpoint of another run, a bad labels file
        print(f"chibi train: {exc}", file=sys.stderr)
        return 2
    if not args.no_eval:
        from avatar3d.evaluate import run_evaluation
        from server.commands.eval import format_report

        report = run_evaluation(path.stem, path.parent, args.cache, args.workers,
                                write_fusion=True, log=log)  # fmt: skip
        print(format_report(report))
    return 0
