"""The `chibi` command line: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys

from avatar3d.errors import ChibiError
from avatar3d.params import ParamsError

from .process_setup import chibi_process_setup

# subcommand -> module under server.commands
COMMANDS: dict[str, str] = {
    "avatar": "avatar",
    "preview": "preview",
    "inspect": "inspect",
    "serve": "serve",
    "client": "client",
    "batch": "batch",
    "params": "params",
    "convert": "convert",
    "train": "train",
    "label": "label",
    "eval": "eval",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s own arguments are added (None: every command's).

    Some commands need heavy imports to describe their options (e.g. `train`
    reads its defaults from the training code, which imports torch), so the
    parser for one invocation only pays for the command being run.
    """
    parser = argparse.ArgumentParser(prog="chibi", description="Face photo to chibi 3D avatar.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"server.commands.{module_name}")
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if command in (None, name):
            module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    chibi_process_setup()
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else ""
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ParamsError as exc:
        print(f"chibi: invalid params: {exc}", file=sys.stderr)
        return 2
    except ChibiError as exc:
        print(f"chibi: error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 3
    except FileNotFoundError as exc:
        print(f"chibi: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
