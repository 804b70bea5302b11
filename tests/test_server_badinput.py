"""Bad input corpus against the real server (the hand-speaking client `raw_client.Raw`,
the photos of `bad_photos`): every case gets its stable code, and the connection (or,
when the protocol requires closing it, the server) still serves the next request.
Server memory stays flat over the corpus repeated."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import pytest
from bad_photos import photo_corpus
from processes import gone_within, group_alive
from raw_client import Raw
from server_harness import PHOTO_PATH_MISSING, PHOTO_SKIP_REASON, ROOT, ServerProcess
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server.protocol import encode_blob, encode_frame, encode_json

LIMITS = dict(frame=8 * 2**20, photo=4 * 2**20, in_flight=3)
SERVER_ARGS = (
    "--workers", "1", "--max-frame-bytes", str(LIMITS["frame"]),
    "--max-photo-bytes", str(LIMITS["photo"]), "--max-in-flight", str(LIMITS["in_flight"]),
    "--idle-timeout", "2", "--hello-timeout", "2", "--rate", "1000", "--rate-burst", "1000",
    "--log-level", "debug",  # the most verbose logs still must not contain photo bytes
    "--send-timeout", "2",
)  # fmt: skip


@pytest.fixture(scope="module")
def server():
    with ServerProcess(*SERVER_ARGS) as running:
        yield running


def request_msg(request_id: str = "r1", **fields: Any) -> dict:
    return {"type": "request", "id": request_id, "source": "params", "params": {}, **fields}


def photo_chunk(request_id: str, **header: Any) -> bytes:
    base = {"id": request_id, "kind": "photo", "index": 0, "count": 1, "offset": 0, "size": 3}
    return encode_frame({**base, **header}, b"abc")


# -- the corpus -------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    send: list  # messages to send after hello (dict, str or bytes)
    code: str  # expected error code
    ref: bool = False  # error names the request in `ref` (non-terminal) instead of `id`
    photo: bool = False  # needs photo requests to be admitted (the photo path)


CASES = [
    Case("invalid_json", ["{not json"], "invalid_json"),
    Case("json_array", ["[1, 2]"], "bad_message"),
    Case("json_string", ['"hello"'], "bad_message"),
    Case("missing_type", [{"id": "r1"}], "bad_message"),
    Case("type_not_string", [{"type": 5}], "bad_message"),
    Case("unknown_type", [{"type": "make_me_a_sandwich"}], "unknown_type"),
    Case("oversized_json", [json.dumps({"type": "ping", "pad": "x" * 70000})], "frame_too_large"),
    Case("deeply_nested_json", ["[" * 30000 + "]" * 30000], "invalid_json"),
    Case("second_hello", [{"type": "hello", "version": 1}], "wrong_state"),
    Case("request_without_id", [{"type": "request", "source": "params", "params": {}}],
         "bad_message"),
    Case("id_too_long", [request_msg("x" * 65)], "bad_message"),
    Case("id_with_spaces", [request_msg("my id")], "bad_message"),
    Case("id_not_string", [request_msg(12)], "bad_message"),
    Case("unknown_source", [request_msg(source="video")], "bad_message"),
    Case("bad_format", [request_msg(options={"format": "fbx"})], "invalid_option"),
    Case("bad_quality", [request_msg(options={"quality": "ultra"})], "invalid_option"),
    Case("unknown_option", [request_msg(options={"colour": "red"})], "invalid_option"),
    Case("option_wrong_type", [request_msg(options={"return_preview": "yes"})], "invalid_option"),
    Case("thumbnail_not_bool", [request_msg(options={"thumbnail": "no"})], "invalid_option"),
    Case("timeout_not_positive", [request_msg(options={"timeout_s": 0})], "invalid_option"),
    Case("params_not_object", [request_msg(params=[1, 2])], "invalid_params"),
    Case("params_out_of_range", [request_msg(params={"shape": {"eye_size": 7}})],
         "invalid_params"),
    Case("params_unknown_field", [request_msg(params={"wings": True})], "invalid_params"),
    Case("params_nan", ['{"type":"request","id":"r1","source":"params","params":'
                        '{"hair_length":NaN}}'], "invalid_params"),
    Case("params_bad_colour", [request_msg(params={"hair_color": "red"})], "invalid_params"),
    Case("params_huge_integer", ['{"type":"request","id":"r1","source":"params","params":'
                                 '{"hair_length":1' + "0" * 400 + "}}"], "invalid_params"),
    # "\ud800" escapes decode to lone surrogates, which no UTF-8 reply could echo
    Case("params_field_lone_surrogate", ['{"type":"request","id":"r1","source":"params",'
                                         '"params":{"\\ud800":1}}'], "invalid_json"),
    Case("name_lone_surrogate", ['{"type":"request","id":"r1","source":"params",'
                                 '"options":{"return_params":true},"params":{"name":"\\ud800"}}'],
         "invalid_json"),
    Case("ping_nonce_lone_surrogate", ['{"type":"ping","nonce":"\\ud800"}'], "invalid_json"),
    Case("ping_nonce_nan", ['{"type":"ping","nonce":NaN}'], "bad_message"),
    Case("cancel_unknown_id", [{"type": "cancel", "id": "nobody"}], "unknown_id", ref=True),
    Case("cancel_without_id", [{"type": "cancel"}], "bad_message"),
    Case("binary_random", [os.urandom(300)], "bad_message"),
    Case("binary_empty", [b""], "bad_message"),
    Case("binary_html", [b"<html><body>not a frame</body></html>"], "bad_message"),
    Case("binary_truncated_header", [encode_frame({"id": "a", "kind": "photo"})[:12]],
         "bad_message"),
    Case("binary_header_not_json", [b"CHB1\x00\x00\x00\x04abcd"], "bad_message"),
    Case("binary_bad_kind", [photo_chunk("r1", kind="video")], "bad_message", ref=True),
    Case("photo_for_unknown_id", [photo_chunk("ghost")], "unknown_id", ref=True),
    Case("photo_declared_too_large", [{"type": "request", "id": "p1", "source": "photo"},
                                      photo_chunk("p1", size=LIMITS["photo"] + 1)],
         "payload_too_large", photo=True),
    Case("photo_checksum_mismatch", [{"type": "request", "id": "p1", "source": "photo"},
                                     photo_chunk("p1", sha256="0" * 64)], "checksum_mismatch",
         photo=True),
    Case("photo_crc32_mismatch", [{"type": "request", "id": "p1", "source": "photo"},
                                  photo_chunk("p1", crc32="00000000")], "checksum_mismatch",
         photo=True),
    Case("photo_crc32_not_hex", [{"type": "request", "id": "p1", "source": "photo"},
                                 photo_chunk("p1", crc32="XYZ")], "bad_message", ref=True,
         photo=True),
    Case("photo_chunk_out_of_order", [{"type": "request", "id": "p1", "source": "photo"},
                                      photo_chunk("p1", index=1, count=2, size=6)],
         "bad_message", photo=True),
    Case("photo_chunk_for_params_request", [request_msg("q1"), photo_chunk("q1")],
         "wrong_state", ref=True),
]  # fmt: skip


async def run_case(url: str, case: Case) -> dict:
    """Send a case on a fresh connection; return the error; check the connection still works."""
    raw = await Raw.open(url)
    try:
        for message in case.send:
            await raw.send(message)
        while True:
            reply = await raw.error(timeout=60)
            if reply.get("code") == case.code or reply.get("type") == "done":
                break
        assert reply.get("code") == case.code, reply
        assert reply["fatal"] is False
        assert (reply.get("ref") is not None) == case.ref, reply
        await raw.alive()  # the same connection serves on
        return reply
    finally:
        await raw.ws.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_message_is_answered_and_the_connection_still_serves(server, case):
    if case.photo and PHOTO_PATH_MISSING:
        pytest.skip(PHOTO_SKIP_REASON)
    asyncio.run(run_case(server.url, case))


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
def test_duplicate_id_and_too_many_in_flight(server):
    async def scenario():
        raw = await Raw.open(server.url)
        # Photo requests stay in flight until their photo arrives: no worker needed.
        for request_id in ("a", "b", "c"):
            await raw.send({"type": "request", "id": request_id, "source": "photo"})
        await raw.send({"type": "request", "id": "a", "source": "photo"})
        duplicate = await raw.error()
        await raw.send({"type": "request", "id": "d", "source": "photo"})
        busy = await raw.error()
        await raw.send({"type": "cancel", "id": "a"})
        cancelled = await raw.error()
        await raw.alive()
        await raw.ws.close()
        return duplicate, busy, cancelled

    duplicate, busy, cancelled = asyncio.run(scenario())
    assert (duplicate["code"], duplicate["ref"], duplicate["id"]) == ("duplicate_id", "a", None)
    assert (busy["code"], busy["id"]) == ("busy", "d")
    assert (cancelled["code"], cancelled["id"]) == ("cancelled", "a")


def test_a_reused_id_gets_its_own_answer_while_the_worker_ends_the_old_request(server):
    """PROTOCOL.md 2.1: an id may be reused once its request ended. Cancelled after its
    worker started, a request ends at once, but the (one) worker holds it a while yet:
    a new request under the same id gets its own result, not the old one's end."""

    async def scenario():
        raw = await Raw.open(server.url)
        await raw.params_request("r1", format="vrm0", quality="high", return_preview=True)
        while (await raw.next()).get("stage") != "started":
            pass
        await raw.send({"type": "cancel", "id": "r1"})
        first = await raw.error()
        await raw.params_request("r1", format="glb")
        second = await raw.error()
        await raw.alive()
        await raw.ws.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert (first["type"], first["code"], first["id"]) == ("error", "cancelled", "r1")
    assert (second["type"], second["id"]) == ("done", "r1"), second


@pytest.mark.parametrize(
    "first, code",
    [({"type": "request", "id": "r1", "source": "params", "params": {}}, "wrong_state"),
     ({"type": "hello", "version": 2}, "unsupported_version"),
     ({"type": "hello", "version": "1"}, "unsupported_version"),
     ("garbage", "invalid_json"),
     (encode_frame({"id": "a", "kind": "photo"}), "wrong_state"),
     ({"type": "make_me_a_sandwich"}, "wrong_state")],
    ids=["request_before_hello", "version_2", "version_string", "garbage_before_hello",
         "binary_before_hello", "unknown_type_before_hello"],
)  # fmt: skip
def test_bad_opening_is_fatal_with_policy_close_and_the_server_serves_on(server, first, code):
    async def scenario():
        raw = await Raw.open(server.url, hello=False)
        await raw.send(first)
        error = await raw.error()
        close_code, reason = await raw.closed()
        again = await Raw.open(server.url)
        await again.alive()
        await again.ws.close()
        return error, close_code, reason

    error, close_code, reason = asyncio.run(scenario())
    assert (error["code"], error["fatal"], close_code, reason) == (code, True, 1008, code)
    if code == "unsupported_version":
        assert error["supported"] == [1]


def test_invalid_utf8_text_frame_closes_1007_and_the_server_serves_on(server):
    async def scenario():
        raw = await Raw.open(server.url)
        await raw.ws.send(b"\xff\xfe{not utf-8", text=True)
        close_code, _ = await raw.closed()
        again = await Raw.open(server.url)
        await again.alive()
        await again.ws.close()
        return close_code

    assert asyncio.run(scenario()) == 1007


@pytest.mark.parametrize("size", [LIMITS["frame"] + 1, 100 * 2**20], ids=["just_over", "100MB"])
def test_huge_frames_are_refused_from_the_header_with_1009(server, size):
    async def scenario():
        raw = await Raw.open(server.url)
        payload = bytes(size)
        start = time.perf_counter()
        try:
            await raw.ws.send(payload)
        except ConnectionClosed:
            pass
        close_code, _ = await raw.closed()
        elapsed = time.perf_counter() - start
        again = await Raw.open(server.url)
        await again.alive()
        await again.ws.close()
        return close_code, elapsed

    close_code, elapsed = asyncio.run(scenario())
    assert close_code == 1009
    assert elapsed < 10, f"refusing a {size}-byte frame took {elapsed:.1f} s"


def test_silent_and_slow_clients_are_timed_out_while_others_are_served(server):
    async def scenario():
        silent = await Raw.open(server.url, hello=False)  # never says hello
        slow = await Raw.open(server.url)
        # A binary frame header announcing 4096 bytes, then a trickle that never finishes.
        slow.ws.transport.write(b"\x82\xfe\x10\x00" + b"\x00\x00\x00\x00" + b"x" * 10)
        busy = await Raw.open(server.url)

        async def keep_pinging():  # a well-behaved client is served all along
            while True:
                await busy.alive()
                await asyncio.sleep(0.3)

        pinger = asyncio.create_task(keep_pinging())
        hello_error = await silent.error(timeout=10)
        silent_close = await silent.closed()
        slow_close = await slow.closed(timeout=20)
        assert not pinger.done(), pinger.exception()
        pinger.cancel()
        await busy.alive()
        await busy.ws.close()
        return hello_error, silent_close, slow_close

    hello_error, silent_close, slow_close = asyncio.run(scenario())
    assert hello_error["code"] == "timeout" and silent_close == (1008, "timeout")
    assert slow_close[0] in (1000, 1006, None)  # idle_timeout, or aborted mid-frame


def test_client_that_stops_reading_is_dropped_and_others_are_served(server):
    async def scenario():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up at once
        sock.connect(("127.0.0.1", server.port))
        stuck = await Raw.open(server.url, sock=sock, max_queue=1)
        for number in range(3):  # ~1.5 MB each; the client never reads them
            await stuck.params_request(f"big{number}", quality="high", format="vrm1")
        other = await Raw.open(server.url)
        start = time.perf_counter()
        while time.perf_counter() - start < 30:
            await other.alive()
            if server.health()["connections"] == 1 and server.health()["in_flight"] == 0:
                break
            await asyncio.sleep(0.2)
        await other.alive()
        await other.ws.close()
        stuck.ws.transport.abort()
        return time.perf_counter() - start

    elapsed = asyncio.run(scenario())
    assert elapsed < 30, "the stuck client was never dropped"
    assert any("stopped reading" in line for line in server.log)


def test_worker_killed_mid_request_answers_internal_error_and_the_server_recovers(server):
    async def scenario():
        raw = await Raw.open(server.url)
        await raw.params_request("doomed", quality="high", format="vrm1")
        assert (await raw.until("progress"))["stage"] == "started"
        for pid in server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        error = await raw.error()
        await raw.params_request("after", format="glb")  # served by a fresh worker
        after = await raw.until("done", "error", timeout=120)
        await raw.ws.close()
        return error, after

    error, after = asyncio.run(scenario())
    assert (error["id"], error["code"]) == ("doomed", "internal_error")
    assert after["type"] == "done"
    assert server.wait_idle()["in_flight"] == 0


def test_a_client_that_sends_and_never_reads_is_read_no_further(server):
    """Pings of 60 kB each, answers never read: the server stops reading the client once
    its unsent answers pass a few chunks, instead of queueing every pong (1.5 GB in 20 s
    before, until the writer gave up on the client), and serves on."""
    ping = encode_json({"type": "ping", "nonce": "x" * 60_000})

    async def scenario() -> tuple[int, bool]:
        raw = await Raw.open(server.url, max_queue=1)  # our side stops reading too
        sent, blocked = 0, False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sent < 512 * 2**20:
            try:
                await asyncio.wait_for(raw.ws.send(ping), 1.0)
            except (TimeoutError, ConnectionClosed):  # not read, or dropped (--send-timeout)
                blocked = True
                break
            sent += len(ping)
        raw.ws.transport.abort()
        fresh = await Raw.open(server.url)
        await fresh.alive()
        await fresh.ws.close()
        return sent, blocked

    sent, blocked = asyncio.run(scenario())
    assert blocked and sent < 64 * 2**20, sent


def test_client_vanishing_mid_upload_frees_its_slot(server):
    async def scenario():
        raw = await Raw.open(server.url)
        await raw.send({"type": "request", "id": "gone", "source": "photo"})
        await raw.until("accepted", "error")
        first = encode_blob("gone", "photo", b"x" * 3000, 1024)[0]
        await raw.send(first)
        raw.ws.transport.abort()  # vanish: no close frame

    asyncio.run(scenario())
    assert server.wait_idle(timeout=10)["in_flight"] == 0


def test_bad_http_requests_are_refused_before_upgrading(server):
    async def scenario():
        statuses = []
        for path, headers in (("/nope", {}), ("/ws", {"Origin": "https://evil.example"})):
            try:
                ws = await connect(
                    f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers
                )
                await ws.close()
                statuses.append(101)
            except InvalidStatus as exc:
                statuses.append(exc.response.status_code)
        for host in ("127.0.0.1", "localhost"):
            same_origin = await Raw.open(
                f"ws://{host}:{server.port}/ws", origin=f"http://{host}:{server.port}"
            )
            await same_origin.alive()
            await same_origin.ws.close()
        # DNS rebinding: a page at a name that now points to 127.0.0.1 sends its own name
        # as Origin and Host alike; a server without tokens takes only loopback names
        rebound = f"rebound.example:{server.port}"
        try:
            ws = await connect(
                f"ws://{rebound}/ws", host="127.0.0.1", port=server.port, origin=f"http://{rebound}"
            )
            await ws.close()
            statuses.append(101)
        except InvalidStatus as exc:
            statuses.append(exc.response.status_code)
        return statuses

    assert asyncio.run(scenario()) == [404, 403, 403]
    assert server.http("/missing-file.js")[0] == 404
    assert server.http("/../../pyproject.toml")[0] == 404
    # names too long for the file system are no file of ours either (not a 500)
    for path in ("/" + "a" * 300, "/a" * 3000, "/vendor/three/" + "b" * 300):
        assert server.http(path)[0] == 404, path[:40]


def test_a_client_that_gets_no_welcome_closes_its_socket(server):
    """`ChibiClient.connect` against a websocket that never answers hello: each failed
    connect leaves no socket behind (nor does `SyncChibiClient`'s)."""
    from websockets.asyncio.server import serve

    from server.client import ChibiClient, SyncChibiClient

    def sockets() -> int:
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except FileNotFoundError:  # the descriptor listdir itself held
                pass
        return count

    async def silent(ws) -> None:
        await asyncio.sleep(30)

    async def scenario() -> list[int]:
        counts = []
        async with serve(silent, "127.0.0.1", 0) as quiet:
            url = f"ws://127.0.0.1:{quiet.sockets[0].getsockname()[1]}/ws"
            counts.append(sockets())
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    await ChibiClient.connect(url, open_timeout=0.3)
            await asyncio.sleep(0.2)
            counts.append(sockets())
            with pytest.raises(TimeoutError):
                await asyncio.to_thread(SyncChibiClient, url, open_timeout=0.3)
            await asyncio.sleep(0.2)
            counts.append(sockets())
            quiet.close(close_connections=True)
        return counts

    before, after_async, after_sync = asyncio.run(scenario())
    assert after_async == before and after_sync == before


def test_photo_bytes_never_reach_the_log_even_at_debug_level(server):
    marker = "PRIVATE-PHOTO-BYTES-7f3a"
    # text-like, so a log would show it; websockets' DEBUG log shows a frame's last bytes
    photo = (f"<html>{marker}</html>" * 50).encode() + b"Zq9!Xw2#"
    tail_hex = " ".join(f"{byte:02x}" for byte in photo[-8:])

    async def scenario():
        raw = await Raw.open(server.url)
        await raw.photo_request("secret", photo)
        await raw.until("error", "done")
        await raw.alive()
        await raw.ws.close()

    asyncio.run(scenario())
    time.sleep(0.2)
    log = "\n".join(server.log)
    assert "secret" in log or "DEBUG" in log  # the log is being written
    assert marker not in log and "Zq9!Xw2#" not in log and tail_hex not in log


def test_no_token_off_loopback_refuses_to_start():
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "CHIBI_TOKENS": "", "CHIBI_TOKEN_FILE": ""},
    )  # fmt: skip
    assert result.returncode == 2
    assert "without a token" in result.stderr


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
@pytest.mark.parametrize("name", list(photo_corpus()))
def test_bad_and_odd_photos_get_their_code(server, name):
    photo, options, expected = photo_corpus()[name]

    async def scenario():
        raw = await Raw.open(server.url)
        await raw.photo_request("p", photo, **options)
        outcomes, items = [], 0
        while True:
            message = await raw.until("error", "done", "result", timeout=120)
            if message["type"] == "result":
                items += 1
                continue
            outcomes.append(message.get("code", "ok"))
            break
        await raw.alive()
        await raw.ws.close()
        return outcomes[0], items

    outcome, items = asyncio.run(scenario())
    assert outcome in expected, f"{name}: got {outcome}"
    if name == "many_faces_all":
        assert items > 1
    elif outcome == "ok":
        assert items == 1


def test_memory_stays_flat_over_the_corpus_repeated(server):
    """RSS of the server and its workers after 1 and after 4 passes over the corpus."""
    photos = [] if PHOTO_PATH_MISSING else list(photo_corpus().values())

    async def one_pass():
        for case in CASES:
            if not (case.photo and PHOTO_PATH_MISSING):
                await run_case(server.url, case)
        for photo, options, _ in photos:
            raw = await Raw.open(server.url)
            await raw.photo_request("m", photo, **options)
            await raw.until("error", "done", timeout=120)
            await raw.ws.close()

    asyncio.run(one_pass())
    before = server.rss_bytes()
    for _ in range(3):
        asyncio.run(one_pass())
    after = server.rss_bytes()
    for pid, size in after.items():
        growth = size - before.get(pid, size)
        assert growth < 25 * 2**20, f"pid {pid} grew {growth / 2**20:.1f} MiB"


def _serve(*args: str) -> subprocess.Popen:
    """`chibi serve` with one worker in its own process group (to find its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "1", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_sigterm_while_starting_stops_the_server(tmp_path):
    """SIGTERM before the workers have loaded their models: the server still stops,
    cleanly, once it has started (it asserted, then answered 503 and ignored SIGTERM)."""
    proc = _serve("--port", "0")
    time.sleep(1.0)  # the worker is still loading its models
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0, proc.stderr.read()[-2000:]
    assert gone_within(lambda: group_alive(proc.pid), 30)


def test_a_port_in_use_is_a_clear_error_and_leaves_no_worker(server):
    proc = _serve("--port", str(server.port))
    assert proc.wait(90) == 2
    assert "cannot listen on" in proc.stderr.read()
    assert gone_within(lambda: group_alive(proc.pid), 30)
