"""The websocket service under load, and its per-request overhead against a plain echo.

One run prints:
- the first request's latency (workers pay their first-call costs at start-up);
- avatars/s and p50/p99 latency with 1, 4 and 16 concurrent clients (params requests,
  glb, default quality; the real `chibi serve` in a subprocess, limits high enough
  that nobody hears `busy`), and with 16 clients asking for VRM 1.0, with its thumbnail
  and without (option `thumbnail: false`);
- the server's per-request overhead (client latency minus the worker's own time for
  the request) as a ratio to a plain `websockets` echo of the same payload sizes
  (small JSON up, the model's bytes down, no compression), both on loopback: the
  echo answering at once, and the same echo answering after a wait as long as our
  workers work (a timer thread sleeps, then wakes the loop; the measured sleep is
  subtracted, as the worker's time is from ours). On this VM a round trip that
  waits 12-15 ms costs 0.2-0.7 ms more than one answered at once, whatever answers
  it: both ends sleep through the wait and pay for waking up;
- the floor of that ratio for any server that, like ours, runs the work in another
  process and sends the result with a checksum: the same echo, plus a round trip
  to a worker process through a pipe and the reply's CRC-32 on both ends (the
  checksum our client asks for; sha256 would add ~0.46 ms); and the same floor
  when its worker computes for as long as ours do (latency minus that time);
- what permessage-deflate would cost on a result (why the server sends binary
  frames uncompressed).
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

from websockets.asyncio.client import connect
from zlib_ng.zlib_ng import crc32

from server.client import ChibiClient

from .common import median, percentile

ROOT = Path(__file__).resolve().parents[1]
# (clients, requests per client, format, thumbnail). VRM 1.0 adds its 1024 px
# thumbnail render to every request, unless left out.
LEVELS = (
    (1, 40, "glb", True), (4, 10, "glb", True), (16, 5, "glb", True),
    (16, 5, "vrm1", True), (16, 5, "vrm1", False),
)  # fmt: skip
VARIANTS = [
    {},
    {"hair_style": "bob"},
    {"glasses": "round"},
    {"hair_color": "#223344"},
    {"shape": {"eye_size": 0.8}},
    {"hair_style": "long", "glasses": "square"},
]
# The overhead's medians: 200 requests each (40 gave medians 0.97-1.21 ms in runs of the
# same code), in rounds alternating with the references.
OVERHEAD_SAMPLES = 200
OVERHEAD_ROUNDS = 4
# reference round trips: name -> (through the floor's worker, replies after the work's time)
REFERENCES = {
    "echo": (False, False),
    "waiting echo": (False, True),
    "floor": (True, False),
    "busy floor": (True, True),
}
ECHO_SERVER = """
import asyncio, multiprocessing, queue, struct, sys, threading, time
from websockets.asyncio.server import serve
from zlib_ng.zlib_ng import crc32
def timer(waits):  # sleeps as asked, then wakes the loop: a reply that waits, as ours do
    while True:
        loop, done, wait_s = waits.get()
        start = time.perf_counter()
        time.sleep(wait_s)
        loop.call_soon_threadsafe(done.set_result, time.perf_counter() - start)
async def echo(ws):
    loop = asyncio.get_running_loop()
    async for message in ws:
        _, size, wait_s, _ = message.split(":")
        waited = 0.0
        if float(wait_s) > 0:
            done = loop.create_future()
            waits.put((loop, done, float(wait_s)))
            waited = await done
        # a reply of the asked size, like a result, after how long the wait took
        await ws.send(struct.pack("<d", waited) + bytes(int(size)))
def worker(conn):
    import time
    while (job := conn.recv()) is not None:
        size, work_s = job
        end = time.perf_counter() + work_s
        while time.perf_counter() < end:  # computes, as a worker does, for work_s
            pass
        conn.send(size)
async def floor(ws):  # + a worker process round trip and the reply's CRC-32, as a result has
    loop = asyncio.get_running_loop()
    async for message in ws:
        _, size, work_s, _ = message.split(":")
        here.send((int(size), float(work_s)))
        done = loop.create_future()
        loop.add_reader(here.fileno(), lambda: done.done() or done.set_result(here.recv()))
        reply = bytes(await done)
        loop.remove_reader(here.fileno())
        await ws.send(b"%08x" % crc32(reply) + reply)
async def main():
    compression = sys.argv[1] if sys.argv[1] != "none" else None
    handler = floor if sys.argv[2:] == ["floor"] else echo
    async with serve(handler, "127.0.0.1", 0, compression=compression, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
if __name__ == "__main__":
    if sys.argv[2:] == ["floor"]:
        here, there = multiprocessing.Pipe()
        multiprocessing.Process(target=worker, args=(there,), daemon=True).start()
    waits = queue.SimpleQueue()
    threading.Thread(target=timer, args=(waits,), daemon=True).start()
    asyncio.run(main())
"""


def _start(command: list[str], marker: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    for line in process.stdout:
        if marker in line or marker == "":
            return process, line.strip()
    raise RuntimeError(f"{command[:4]} did not start")


async def _client(
    url: str, number: int, count: int, fmt: str, thumbnail: bool
) -> list[tuple[float, float, int]]:
    """(latency s, worker time s, model bytes) per request."""
    samples = []
    async with await ChibiClient.connect(url) as client:
        for index in range(count):
            start = time.perf_counter()
            result = await client.generate(
                params=VARIANTS[(number + index) % len(VARIANTS)], format=fmt,
                thumbnail=thumbnail,
            )  # fmt: skip
            latency = time.perf_counter() - start
            samples.append((latency, result.timings_ms["exported"] / 1000, len(result.data)))
    return samples


async def _level(url: str, clients: int, count: int, fmt: str = "glb", thumbnail: bool = True):
    start = time.perf_counter()
    runs = (_client(url, n, count, fmt, thumbnail) for n in range(clients))
    results = await asyncio.gather(*runs)
    elapsed = time.perf_counter() - start
    return [sample for client in results for sample in client], elapsed


async def _echo_latency(
    port: int, sizes: list[int], verify: bool = False, work_s: float = 0.0
) -> list[float]:
    """Seconds per round trip, one per size (after two to warm up), minus the time the
    reply waited: `work_s`, the time the floor's worker computes, or the time the
    echo's timer thread slept for `work_s`."""
    latencies = []
    async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:
        for size in sizes[:2] + sizes:
            start = time.perf_counter()
            await ws.send(f"request:{size}:{work_s}:" + "x" * 200)  # ~ a request message
            reply = await ws.recv()
            latency = time.perf_counter() - start
            if verify:
                if b"%08x" % crc32(reply[8:]) != reply[:8]:
                    raise RuntimeError("floor server: checksum mismatch")
                latency -= work_s
            else:  # the echo's timer thread says how long it slept
                latency -= struct.unpack("<d", reply[:8])[0]
            latencies.append(latency)
    return latencies[2:]


def _overhead_report(url: str, echo_port: int, floor_port: int) -> None:
    """Our per-request overhead against the echo (at once, and after a wait as long as
    our workers') and the floor (worker idle, and computing that long), medians of
    OVERHEAD_SAMPLES requests each, taken in interleaved rounds so that the machine's
    drift between minutes (on this VM the echo alone moves 0.44-0.72 ms from run to
    run) falls on every line alike."""
    ours: list[float] = []
    work: list[float] = []
    sizes: list[int] = []
    references: dict[str, list[float]] = {name: [] for name in REFERENCES}
    per_round = OVERHEAD_SAMPLES // OVERHEAD_ROUNDS
    for _ in range(OVERHEAD_ROUNDS):
        single = asyncio.run(_level(url, 1, per_round))[0]
        ours += [(latency - took) * 1000 for latency, took, _ in single]
        work += [took for _, took, _ in single]
        sizes = [size for _, _, size in single]
        for name, (floor, waits) in REFERENCES.items():
            port = floor_port if floor else echo_port
            runs = asyncio.run(_echo_latency(port, sizes, floor, median(work) if waits else 0.0))
            references[name] += [latency * 1000 for latency in runs]
    overhead = median(ours)
    echo, waiting_echo, floor, busy_floor = (median(references[name]) for name in REFERENCES)
    print(
        f"per-request overhead (latency - worker time), 1 client: p50 {overhead:.2f} ms; "
        f"plain websockets echo of the same sizes (~{median(sizes) / 1e3:.0f} kB), "
        f"answering after waiting as long as our workers work ({median(work) * 1000:.1f} ms, "
        f"a timer thread; the wait subtracted): p50 {waiting_echo:.2f} ms; ratio "
        f"{overhead / waiting_echo:.2f}x (target 1.5x)"
    )
    print(
        f"  the same echo answering at once: p50 {echo:.2f} ms; ratio {overhead / echo:.2f}x "
        f"(a round trip that waits costs {waiting_echo - echo:.2f} ms more here)"
    )
    print(
        f"  floor: echo + worker process round trip + CRC-32 on both ends: p50 {floor:.2f} ms "
        f"= {floor / echo:.2f}x the echo; with its worker computing as long as ours "
        f"{busy_floor:.2f} ms = {busy_floor / echo:.2f}x"
    )


def main() -> None:
    print("== websocket service (chibi serve, 2 workers, params -> glb, loopback) ==")
    server, line = _start(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--port",
            "0",
            "--workers",
            "2",
            "--max-queue",
            "64",
            "--max-in-flight",
            "8",
            "--rate",
            "10000",
            "--rate-burst",
            "10000",
        ],
        "listening on",
    )
    url = line.split("listening on", 1)[1].strip()
    echo, port_line = _start([sys.executable, "-c", ECHO_SERVER, "none"], "")
    floor, floor_port = _start([sys.executable, "-c", ECHO_SERVER, "none", "floor"], "")
    try:
        first = asyncio.run(_level(url, 1, 1, "vrm1"))[0][0][0] * 1000
        print(f"first request on a fresh server (params -> VRM 1.0): {first:.0f} ms")
        asyncio.run(_level(url, 2, 3))  # warm every worker's caches
        for clients, count, fmt, thumbnail in LEVELS:
            samples, elapsed = asyncio.run(_level(url, clients, count, fmt, thumbnail))
            latencies = [s[0] * 1000 for s in samples]
            label = fmt if thumbnail or fmt == "glb" else f"{fmt} without thumbnail"
            print(
                f"{clients:>2} client(s) x {count:>2}, {label:4}: "
                f"{len(samples) / elapsed:6.1f} avatars/s  "
                f"p50 {median(latencies):7.1f} ms  p99 {percentile(latencies, 99):7.1f} ms"
            )
        _overhead_report(url, int(port_line), int(floor_port))
        _deflate_report(url)
    finally:
        for process in (server, echo, floor):
            process.terminate()
            process.wait(30)


def _deflate_report(url: str) -> None:
    async def one_model() -> bytes:
        async with await ChibiClient.connect(url) as client:
            return (await client.generate(params={"hair_style": "bob"}, format="vrm1")).data

    data = asyncio.run(one_model())
    start = time.perf_counter()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)  # what permessage-deflate does
    compressed = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    deflate_ms = (time.perf_counter() - start) * 1000
    print(
        f"deflate of a {len(data) / 1e3:.0f} kB VRM: {deflate_ms:.1f} ms for "
        f"{len(compressed) / len(data):.0%} of the size -> binary frames go uncompressed"
    )


if __name__ == "__main__":
    main()
