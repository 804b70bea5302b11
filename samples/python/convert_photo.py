"""Convert a face photo to a VRM through a running `chibi serve`, with progress.

    chibi serve &                                    # or: make serve
    python samples/python/convert_photo.py me.jpg me.vrm [--format vrm1|vrm0|glb] [--url ws://127.0.0.1:8765/ws]

The photo travels in memory as binary websocket frames; nothing is written but
the output file (and its preview PNG beside it).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from server.client import DEFAULT_URL, ChibiClient, ChibiServerError


async def convert(photo: Path, output: Path, fmt: str, url: str, token: str | None) -> None:
    async with await ChibiClient.connect(url, token=token) as client:
        result = await client.generate(
            photo.read_bytes(),
            format=fmt,
            return_preview=True,
            on_progress=lambda stage, message: print(
                f"  {stage:<10} {message.get('elapsed_ms', 0):7.0f} ms"
            ),
        )
    output.write_bytes(result.data)
    if result.preview:
        output.with_suffix(".png").write_bytes(result.preview)
    print(f"wrote {output} ({len(result.data) / 1e6:.2f} MB) in {result.elapsed_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--format", choices=("vrm1", "vrm0", "glb"), default="vrm1")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--token")
    args = parser.parse_args()
    try:
        asyncio.run(convert(args.photo, args.output, args.format, args.url, args.token))
    except ChibiServerError as exc:
        raise SystemExit(f"server refused: [{exc.code}] {exc.message}") from None


if __name__ == "__main__":
    main()
