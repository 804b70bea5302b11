"""`make bench`: every benchmark of the project, one after the other, in one run.

`python -m bench [SECTION ...]` runs only the named sections (avatar, regressor,
server, batch).
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

SECTIONS = ("avatar", "regressor", "server", "batch")


def main(argv: list[str]) -> None:
    from server.process_setup import chibi_process_setup

    chibi_process_setup()  # as every `chibi` command does: measure the user's process
    chosen = argv or list(SECTIONS)
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        sys.exit(f"bench: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for name in chosen:
        print(f"######## {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        if name == "batch":
            module.main([])
        else:
            module.main()
        print(flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
