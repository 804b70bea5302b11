"""Load: 16 concurrent clients x 50 requests against a server whose limits are set low on
purpose. Every request ends `ok` or `busy` (answered at once); p50/p99 are reported."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from raw_client import Raw
from server_harness import PHOTO_PATH_MISSING, PHOTO_SKIP_REASON, ServerProcess, metric_value

from server.client import ChibiClient, ChibiServerError

CLIENTS, REQUESTS = 16, 50
# 2 workers + a queue of 2: at most 4 requests admitted at once, so most of 16 clients
# hear `busy` most of the time.
ARGS = ("--workers", "2", "--max-queue", "2", "--max-in-flight", "1",
        "--rate", "1000", "--rate-burst", "1000")  # fmt: skip
VARIANTS = [{}, {"hair_style": "bob"}, {"glasses": "round"}, {"hair_color": "#223344"}]


async def one_client(url: str, number: int) -> list[tuple[str, float]]:
    outcomes = []
    async with await ChibiClient.connect(url) as client:
        for index in range(REQUESTS):
            params = VARIANTS[(number + index) % len(VARIANTS)]
            start = time.perf_counter()
            try:
                result = await client.generate(params=params, format="glb")
                assert result.data[:4] == b"glTF"
                outcomes.append(("ok", time.perf_counter() - start))
            except ChibiServerError as exc:
                outcomes.append((exc.code, time.perf_counter() - start))
                if exc.code == "busy":
                    await asyncio.sleep(0.01)  # a polite client backs off a little
    return outcomes


@pytest.fixture(scope="module")
def server():
    with ServerProcess(*ARGS) as running:
        yield running


def test_sixteen_clients_fifty_requests_each_only_ok_or_busy(server):
    async def scenario():
        results = await asyncio.gather(*(one_client(server.url, n) for n in range(CLIENTS)))
        return [outcome for client in results for outcome in client]

    start = time.perf_counter()
    outcomes = asyncio.run(scenario())
    elapsed = time.perf_counter() - start
    metrics = server.http("/metrics")[1]
    health = server.wait_idle()

    codes = {code for code, _ in outcomes}
    ok = np.array([seconds for code, seconds in outcomes if code == "ok"])
    busy = np.array([seconds for code, seconds in outcomes if code == "busy"])
    ms = lambda values, q: np.percentile(values, q) * 1000  # noqa: E731
    print(
        f"\nload: {len(outcomes)} requests in {elapsed:.1f} s: {len(ok)} ok "
        f"({len(ok) / elapsed:.1f} avatars/s), {len(busy)} busy; "
        f"ok p50 {ms(ok, 50):.0f} ms p99 {ms(ok, 99):.0f} ms; "
        f"busy p50 {ms(busy, 50):.1f} ms p99 {ms(busy, 99):.1f} ms"
    )
    assert len(outcomes) == CLIENTS * REQUESTS
    assert codes <= {"ok", "busy"}, codes
    assert len(ok) >= 20 and len(busy) >= 20
    assert np.percentile(busy, 99) < 0.5  # overload is answered at once, not queued
    assert metric_value(metrics, 'chibi_requests_total{result="ok"}') == len(ok)
    assert metric_value(metrics, 'chibi_requests_total{result="busy"}') == len(busy)
    assert health["in_flight"] == 0 and health["queued"] == 0


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_max_connections_admits_that_many_of_a_burst():
    """max_connections 3: of 10 clients connecting at once, 3 get in and the rest hear
    503 busy; handshakes dropped before their answer hold no place afterwards."""
    from websockets.exceptions import InvalidStatus

    async def connect(url: str) -> ChibiClient | int:
        try:
            return await ChibiClient.connect(url)
        except InvalidStatus as exc:
            return exc.response.status_code

    async def scenario(url: str, port: int) -> tuple[list, int | ChibiClient]:
        burst = await asyncio.gather(*(connect(url) for _ in range(10)))
        for client in burst:
            if isinstance(client, ChibiClient):
                await client.close()
        raw = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        for _reader, writer in raw:  # complete handshakes, dropped before the answer
            writer.write(UPGRADE)
            await writer.drain()
            writer.close()
        await asyncio.sleep(0.5)
        after = await connect(url)
        if isinstance(after, ChibiClient):
            await after.close()
        return burst, after

    with ServerProcess("--workers", "1", "--max-connections", "3") as running:
        burst, after = asyncio.run(scenario(running.url, running.port))
    assert burst.count(503) == 7
    assert isinstance(after, ChibiClient)


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
def test_photos_still_uploading_hold_no_place_in_the_queue():
    """One worker, no queue: a single place. Four photo requests whose photos never come
    leave it free for another client's request (they held it until request_timeout, so
    one client could make a server answer everyone `busy`). A photo completed while the
    place is taken hears `busy` then."""
    import io

    from PIL import Image
    from skimage import data as skdata

    buffer = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buffer, "JPEG", quality=90)
    photo = buffer.getvalue()

    async def scenario(url: str) -> tuple[list, str, list]:
        uploader = await Raw.open(url)
        for number in range(4):
            message = {"type": "request", "id": f"u{number}", "source": "photo",
                       "options": {"format": "glb", "timeout_s": 30}}  # fmt: skip
            await uploader.send(message)
        accepted = [(await uploader.until("accepted", "error"))["type"] for _ in range(4)]
        async with await ChibiClient.connect(url) as other:
            other_format = (await other.generate(params={}, format="glb")).format
        photos = await Raw.open(url)
        await photos.photo_request("p1", photo)  # takes the place
        await photos.photo_request("p2", photo)  # complete while p1 holds it
        ends = {}
        while len(ends) < 2:
            message = await photos.until("done", "error")
            ends[message["id"]] = message.get("code", "done")
        for socket in (uploader, photos):
            await socket.ws.close()
        return accepted, other_format, [ends["p1"], ends["p2"]]

    args = ("--workers", "1", "--max-queue", "0", "--rate", "1000", "--rate-burst", "1000")
    with ServerProcess(*args) as running:
        accepted, other_format, ends = asyncio.run(scenario(running.url))
        assert running.wait_idle()["in_flight"] == 0
    assert accepted == ["accepted"] * 4
    assert other_format == "glb"
    assert ends == ["done", "busy"]


def test_workers_exit_when_the_server_is_killed(server):
    """Last in this module: SIGKILL gives the server no chance to stop its pool."""
    workers = server.worker_pids()
    assert len(workers) == 2
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert not alive, f"workers {alive} outlived their server"
