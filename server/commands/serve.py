"""`chibi serve`: run the websocket service (see server/PROTOCOL.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from dataclasses import fields

HELP = "run the websocket service (photo or params in, glb/VRM out)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from server.config import ServerConfig

    parser.add_argument("--config", metavar="TOML", help="TOML settings file (or CHIBI_CONFIG)")
    parser.add_argument(
        "--token",
        dest="tokens",
        action="append",
        metavar="TOKEN",
        help="bearer token clients must present (repeatable; prefer CHIBI_TOKENS or token_file)",
    )
    for f in fields(ServerConfig):
        if f.name == "tokens":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float}.get(str(f.type), str)
        listed = callable(f.default_factory)
        default = "comma-separated list" if listed else f"default {f.default!r}"
        parser.add_argument(flag, dest=f.name, type=kind, default=None, help=default)


def run(args: argparse.Namespace) -> int:
    from server.app import ChibiServer
    from server.config import ConfigError, ServerConfig, load_config

    overrides = {f.name: getattr(args, f.name, None) for f in fields(ServerConfig)}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"chibi serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # websockets logs frame contents at DEBUG: that would put bytes of photos in the log.
    websockets_logger = logging.getLogger("websockets")
    websockets_logger.setLevel(max(logging.INFO, websockets_logger.getEffectiveLevel()))
    try:
        code = asyncio.run(_serve(ChibiServer(config)))
    except OSError as exc:  # the port is taken, the address is not ours...
        print(f"chibi serve: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    # The drain is complete. Should the interpreter's own teardown hang (seen once, with
    # the ProcessPoolExecutor the worker pool used before: it joined the executor's
    # manager thread; kept as a guard for native libraries' exit handlers), leave anyway
    # after 10 s.
    watchdog = threading.Timer(10.0, os._exit, args=(code,))
    watchdog.daemon = True
    watchdog.start()
    return code


async def _serve(server) -> int:  # type: ignore[no-untyped-def]
    server.install_signal_handlers()
    await server.start()
    if server.stopped.is_set():  # a signal came while starting
        return 0
    # One parseable line on stdout: scripts and tests wait for it (port 0 picks a free port).
    print(f"chibi: listening on {server.url}", flush=True)
    await server.serve_until_stopped()
    return 0
