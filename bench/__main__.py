"""`make bench`: every benchmark of the project, one after the other, in one run."""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

SECTIONS = ("bench_avatar", "bench_batch")


def main() -> None:
    for name in SECTIONS:
        importlib.import_module(f"bench.{name}").main()
        print()


if __name__ == "__main__":
    main()
