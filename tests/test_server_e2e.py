"""End to end: the real `chibi serve` on a loopback port, the real client, the user's paths."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import ssl
import struct
import subprocess
import time

import numpy as np
import pytest
from bad_photos import astronaut
from PIL import Image
from raw_client import Raw
from server_harness import (
    PHOTO_PATH_MISSING,
    PHOTO_SKIP_REASON,
    ROOT,
    ServerProcess,
    metric_value,
)
from validators import assert_valid_file
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from avatar3d.params import AvatarParams
from server.cli import main as cli_main
from server.client import ChibiClient, ChibiServerError, SyncChibiClient
from server.config import ConfigError, load_config

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # `chibi avatar` renders VRM thumbnails
SAMPLE = ROOT / "samples" / "params" / "bob_round_glasses.json"
# ~0.3-0.4 s of worker time each on the CI machine (high quality, thumbnail and preview)
HEAVY = {"quality": "high", "format": "vrm1", "return_preview": True}
MAGIC = {"glb": b"glTF", "vrm1": b"glTF", "vrm0": b"glTF"}


@pytest.fixture(scope="module")
def server():
    with ServerProcess("--workers", "2", "--rate", "1000", "--rate-burst", "1000") as running:
        yield running


def split_glb(data: bytes) -> tuple[dict, bytes]:
    """A .glb/.vrm file -> (its glTF JSON, its binary chunk)."""
    json_length = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20 : 20 + json_length]), data[20 + json_length + 8 :]


def assert_same_model(got: bytes, expected: bytes) -> None:
    """Byte-identical, except a VRM thumbnail may differ in a few edge pixels.

    exporters.preview renders the thumbnail with Mesa llvmpipe, whose output varies
    by a handful of anti-aliased pixels between runs (even within one process);
    everything else in the file is deterministic and compared exactly.
    """
    if got == expected:
        return
    (doc, blob), (doc_expected, blob_expected) = split_glb(got), split_glb(expected)
    meta = doc.get("extensions", {}).get("VRMC_vrm", {}).get("meta", {})
    image = meta.get("thumbnailImage")
    if image is None and "VRM" in doc.get("extensions", {}):
        image = doc["textures"][doc["extensions"]["VRM"]["meta"]["texture"]]["source"]
    assert image is not None, "files differ and there is no thumbnail to explain it"
    thumb_view = doc["images"][image]["bufferView"]
    strip = lambda d: {k: v for k, v in d.items() if k not in ("bufferViews", "buffers")}  # noqa: E731
    assert strip(doc) == strip(doc_expected)
    views, views_expected = doc["bufferViews"], doc_expected["bufferViews"]
    assert len(views) == len(views_expected)
    for number, (view, view_expected) in enumerate(zip(views, views_expected, strict=True)):
        start, start_expected = view.get("byteOffset", 0), view_expected.get("byteOffset", 0)
        part = blob[start : start + view["byteLength"]]
        part_expected = blob_expected[start_expected : start_expected + view_expected["byteLength"]]
        if number != thumb_view:
            assert part == part_expected, f"bufferView {number} differs"
            continue
        pixels = np.asarray(Image.open(io.BytesIO(part)), np.int16)
        pixels_expected = np.asarray(Image.open(io.BytesIO(part_expected)), np.int16)
        assert pixels.shape == pixels_expected.shape
        assert (pixels != pixels_expected).mean() < 1e-3, "thumbnails differ beyond edge noise"


def cli(*args: str) -> tuple[int, str]:
    """Run `chibi ARGS` in this process (the same code path, no interpreter start-up)."""
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = cli_main(list(args))
    return code, errors.getvalue()


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("fmt", ["vrm1", "vrm0", "glb"])
def test_params_over_the_wire_equal_the_cli_output(server, tmp_path, fmt):
    expected_path = tmp_path / f"cli.{fmt}"
    code, errors = cli("avatar", "--params", str(SAMPLE), "--format", fmt, "-o", str(expected_path))
    assert code == 0, errors

    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            params = json.loads(SAMPLE.read_text())
            return await client.generate(params=params, format=fmt)

    result = run(scenario())
    assert_same_model(result.data, expected_path.read_bytes())


def test_chibi_client_command_writes_the_same_file(server, tmp_path):
    expected, output = tmp_path / "cli.vrm", tmp_path / "wire.vrm"
    assert cli("avatar", "--params", str(SAMPLE), "-o", str(expected))[0] == 0
    extra = ("--preview", str(tmp_path / "p.png"), "--params-out", str(tmp_path / "p.json"))
    code, errors = cli("client", "--params", str(SAMPLE), "-o", str(output), "--url", server.url,
                       *extra)  # fmt: skip
    assert code == 0, errors
    assert_same_model(output.read_bytes(), expected.read_bytes())
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sent = AvatarParams.from_json(SAMPLE.read_text()).to_dict()
    assert json.loads((tmp_path / "p.json").read_text()) == sent
    assert "exported" in errors  # progress lines


@pytest.mark.parametrize("fmt, extension, slot", [("vrm1", "VRMC_vrm", "thumbnailImage"),
                                                  ("vrm0", "VRM", "texture")])  # fmt: skip
def test_vrm_without_thumbnail_over_the_wire_equals_the_cli_output(
    server, tmp_path, fmt, extension, slot
):
    """`--no-thumbnail` / option `thumbnail: false`: a complete VRM, one image fewer, byte for
    byte the same from `chibi avatar` and over the wire (no render left to differ)."""
    paths = {name: tmp_path / f"{name}.vrm" for name in ("cli", "wire", "with")}
    common = ("--params", str(SAMPLE), "--format", fmt)
    assert cli("avatar", *common, "--no-thumbnail", "-o", str(paths["cli"]))[0] == 0
    assert cli("avatar", *common, "-o", str(paths["with"]))[0] == 0
    code, errors = cli("client", *common, "--no-thumbnail", "-o", str(paths["wire"]),
                       "--url", server.url, "--quiet")  # fmt: skip
    assert code == 0, errors
    data = paths["wire"].read_bytes()
    assert data == paths["cli"].read_bytes()
    gltf, with_thumbnail = split_glb(data)[0], split_glb(paths["with"].read_bytes())[0]
    assert slot not in gltf["extensions"][extension]["meta"]
    assert slot in with_thumbnail["extensions"][extension]["meta"]
    assert len(gltf["images"]) == len(with_thumbnail["images"]) - 1
    assert_valid_file(data, f"no_thumbnail.{fmt}")  # validator, VRM schemas, structure


def test_progress_then_result_then_chunks_then_done_in_order(server):
    async def scenario():
        raw = await Raw.open(server.url)
        await raw.params_request("r1", format="vrm1", return_preview=True)
        sequence = []
        while True:
            message = await raw.next()
            sequence.append(message.get("stage") or message.get("type") or message["binary"])
            if message.get("type") in ("done", "error"):
                return sequence

    assert run(scenario()) == ["accepted", "started", "params", "built", "exported", "result",
                               "model", "preview", "done"]  # fmt: skip


def test_several_requests_in_flight_on_one_connection(server):
    requests = [("glb", {}), ("vrm1", {"hair_style": "long"}), ("vrm0", {"glasses": "round"}),
                ("glb", {"hair_color": "#ff0000"})]  # fmt: skip

    async def scenario():
        async with await ChibiClient.connect(server.url, max_chunk_bytes=65536) as client:
            return await asyncio.gather(
                *(client.generate(params=p, format=f, return_params=True) for f, p in requests)
            )

    results = run(scenario())
    assert len({r.id for r in results}) == len(requests)
    for (fmt, params), result in zip(requests, results, strict=True):
        assert result.format == fmt and result.data[:4] == MAGIC[fmt]
        assert result.params == AvatarParams.from_dict(params).to_dict()
    # chunked at 64 KiB and reassembled, sha256-checked by the client: the same bytes
    alone = run(_generate(server.url, params=requests[0][1], format="glb"))
    assert alone.data == results[0].data


async def _generate(url, **kwargs):
    async with await ChibiClient.connect(url) as client:
        return await client.generate(**kwargs)


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
def test_both_checksums_carry_the_same_avatar_both_ways(server):
    """Our client asks for crc32 at hello, clients that predate the choice get sha256
    (the C# and C++ cores: test_unity_bridge, test_unreal_sample); photo chunks go up
    with the connection's checksum, results come down with it."""

    buffer = io.BytesIO()
    astronaut().save(buffer, "JPEG", quality=92)
    photo = buffer.getvalue()  # sent up in 64 KiB chunks (welcome's chunk_bytes)

    async def scenario(checksums):
        async with await ChibiClient.connect(
            server.url, checksums=checksums, max_chunk_bytes=65536
        ) as client:
            result = await client.generate(photo, format="glb")
            return client.welcome["checksum"], result.data

    chosen = {checksums: run(scenario(checksums)) for checksums in (("sha256",), ("crc32",))}
    assert [name for name, _ in chosen.values()] == ["sha256", "crc32"]
    assert chosen[("sha256",)][1] == chosen[("crc32",)][1]
    assert run(scenario(("crc32", "sha256")))[0] == "crc32"  # the client's default


def test_a_failing_progress_callback_ends_its_request_not_the_client(server):
    """The caller's on_progress raises: that request raises it (and is cancelled on the
    server); the client reads on, so the next request is answered (it waited forever)."""

    def broken(stage: str, _message: dict) -> None:
        raise RuntimeError(f"bug in the caller's callback at {stage}")

    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            with pytest.raises(RuntimeError, match="bug in the caller's callback"):
                await client.generate(params={}, format="glb", on_progress=broken)
            after = await asyncio.wait_for(client.generate(params={}, format="glb"), 60)
            return after.data[:4], client._reader.done()

    assert run(scenario()) == (b"glTF", False)


def test_a_ping_given_up_on_is_forgotten(server):
    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            with pytest.raises(TimeoutError):
                await client.ping(timeout=0)  # given up on before its pong comes
            left = dict(client._pongs)
            await client.ping()  # the late pong is read and dropped; the next one answers
            return left, dict(client._pongs)

    assert run(scenario()) == ({}, {})


def test_cancel_queued_and_running_requests(server):
    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            started = asyncio.Event()

            def on_progress(stage, _message):
                if stage == "started":
                    started.set()

            running = asyncio.ensure_future(
                client.generate(params={"hair_style": "bun"}, on_progress=on_progress,
                                request_id="running", **HEAVY))  # fmt: skip
            others = [asyncio.ensure_future(client.generate(params={}, request_id=f"q{i}", **HEAVY))
                      for i in range(2)]  # fmt: skip
            await asyncio.wait_for(started.wait(), 60)
            await client.cancel("running")
            await client.cancel("q1")  # the second of two waiting ones: still queued
            outcomes = []
            for task in [running, *others]:
                try:
                    await task
                    outcomes.append("ok")
                except ChibiServerError as exc:
                    outcomes.append(exc.code)
            after = await client.generate(params={}, format="glb")
            return outcomes, after

    outcomes, after = run(scenario())
    assert outcomes == ["cancelled", "ok", "cancelled"]
    assert after.data[:4] == b"glTF"
    assert server.wait_idle()["in_flight"] == 0
    metrics = server.http("/metrics")[1]
    assert metric_value(metrics, 'chibi_requests_total{result="cancelled"}') >= 2


def test_request_timeout_ends_the_request_and_frees_the_worker(server):
    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            start = time.perf_counter()
            with pytest.raises(ChibiServerError) as exc:
                await client.generate(params={"hair_style": "twintails"}, timeout_s=0.1, **HEAVY)
            elapsed = time.perf_counter() - start
            after = await client.generate(params={}, format="glb")
            return exc.value.code, elapsed, after

    code, elapsed, after = run(scenario())
    assert code == "timeout" and elapsed < 1.5 and after.data[:4] == b"glTF"
    assert server.wait_idle()["in_flight"] == 0  # the worker gave the job up


def test_event_loop_answers_pings_within_100ms_while_all_workers_are_busy(server):
    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            work = [asyncio.ensure_future(client.generate(params={"hair_style": s}, **HEAVY))
                    for s in ("ponytail", "twintails", "spiky", "long")]  # fmt: skip
            raw = await Raw.open(server.url)
            await asyncio.sleep(0.3)
            frame_pings, app_pings, busy_seen = [], [], 0
            while not all(task.done() for task in work) and len(frame_pings) < 40:
                busy_seen += server.health()["in_flight"] >= 2
                start = time.perf_counter()
                await asyncio.wait_for(await raw.ws.ping(), 5)  # websocket ping frame
                frame_pings.append(time.perf_counter() - start)
                app_pings.append(await client.ping())
                await asyncio.sleep(0.05)
            await asyncio.gather(*work)
            await raw.ws.close()
            return frame_pings, app_pings, busy_seen

    frame_pings, app_pings, busy_seen = run(scenario())
    assert busy_seen >= 5 and len(frame_pings) >= 5
    print(f"ping while busy: max frame {max(frame_pings) * 1000:.1f} ms, "
          f"max app {max(app_pings) * 1000:.1f} ms over {len(frame_pings)}")  # fmt: skip
    assert max(frame_pings) < 0.1 and max(app_pings) < 0.1


def test_health_and_metrics_on_the_same_port(server):
    run(_generate(server.url, params={}, format="glb"))
    status, body = server.http("/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["workers"] == 2
    assert health["sources"]["params"] is True
    status, text = server.http("/metrics")
    assert status == 200
    assert metric_value(text, 'chibi_requests_total{result="ok"}') >= 1
    for stage in ("queue", "params", "built", "exported"):
        assert metric_value(text, f'chibi_stage_seconds_count{{stage="{stage}"}}') >= 1, stage
    for name in ("chibi_in_flight", "chibi_queue_length", "chibi_open_connections"):
        assert f"\n{name} " in text
    index = ROOT / "server" / "static" / "index.html"
    if index.exists():  # the viewer page (issue 6), served from the same port
        status, page = server.http("/")
        assert status == 200 and page == index.read_text()


def test_sync_client_wrapper(server):
    with SyncChibiClient(server.url) as client:
        first = client.generate(params={}, format="glb")
        second = client.generate(params={}, format="glb")
    assert first.data == second.data and first.data[:4] == b"glTF"


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
@pytest.mark.parametrize("name", ["astronaut.jpg", "IMG_0001.HEIC"])
def test_photo_over_the_wire_equals_chibi_convert(server, tmp_path, name):
    photo = tmp_path / name
    astronaut().save(photo, "JPEG" if name.endswith(".jpg") else "HEIF", quality=92)
    expected = tmp_path / "cli.vrm"
    code, errors = cli("convert", str(photo), "-o", str(expected))
    assert code == 0, errors
    stages = []

    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            return await client.generate(
                photo.read_bytes(), format="vrm1", on_progress=lambda s, _: stages.append(s)
            )

    result = run(scenario())
    assert stages == ["started", "decoded", "face_found", "params", "built", "exported"]
    assert_same_model(result.data, expected.read_bytes())


@pytest.mark.skipif(PHOTO_PATH_MISSING, reason=PHOTO_SKIP_REASON)
def test_the_glasses_on_a_photo_come_back_with_the_avatar(server):
    """Grace Hopper's frames, read by the landmark teacher, reach a client's params."""
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        photo = handle.read()

    async def scenario():
        async with await ChibiClient.connect(server.url) as client:
            return await client.generate(photo, format="glb", return_params=True)

    assert run(scenario()).params["glasses"] == "square"


# -- auth, TLS, rate limit -------------------------------------------------------------------
TOKEN = "s3cret-token-for-tests"
TOKEN2 = "another-token-for-tests"  # its own rate-limit bucket


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
               "-keyout", str(key), "-out", str(cert)]  # fmt: skip
    subprocess.run(openssl, check=True, capture_output=True)
    args = ("--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key),
            "--rate", "0.2", "--rate-burst", "2")  # fmt: skip
    args += ("--shutdown-timeout", "60", "--allowed-origins", "https://app.example")
    with ServerProcess(*args, env={"CHIBI_TOKENS": f"{TOKEN},{TOKEN2}"}) as running:
        context = ssl.create_default_context(cafile=str(cert))
        yield running, context


def test_tokens_over_tls_header_or_hello_and_rate_limit(secure_server):
    server, context = secure_server
    assert server.url.startswith("wss://")

    async def scenario():
        outcomes = {}
        try:
            await ChibiClient.connect(server.url, ssl=context)
        except ChibiServerError as exc:
            outcomes["no_token"] = exc.code
        try:
            await ChibiClient.connect(server.url, token="wrong-token", ssl=context)
        except InvalidStatus as exc:
            outcomes["bad_header"] = exc.response.status_code
        try:
            await ChibiClient.connect(server.url, token="wrong", token_in_hello=True, ssl=context)
        except ChibiServerError as exc:
            outcomes["bad_hello"] = exc.code
        for origin in ("https://app.example", "https://evil.example"):
            try:
                async with await ChibiClient.connect(
                    server.url, token=TOKEN, ssl=context, origin=origin
                ) as client:
                    outcomes[origin] = await client.ping() < 1
            except InvalidStatus as exc:
                outcomes[origin] = exc.response.status_code
        for mode in (False, True):
            async with await ChibiClient.connect(
                server.url, token=TOKEN, token_in_hello=mode, ssl=context
            ) as client:
                outcomes[f"ok_{mode}"] = await client.ping() < 1
        # burst 2 for this token: two requests are admitted, the third is refused at once
        async with await ChibiClient.connect(server.url, token=TOKEN, ssl=context) as client:
            results = await asyncio.gather(
                *(client.generate(params={}, format="glb") for _ in range(3)),
                return_exceptions=True,
            )
        outcomes["rate"] = sorted(getattr(r, "code", "ok") for r in results)
        return outcomes

    assert run(scenario()) == {
        "no_token": "unauthorized",
        "bad_header": 401,
        "bad_hello": "unauthorized",
        "ok_False": True,
        "ok_True": True,
        "rate": ["ok", "ok", "rate_limited"],
        "https://app.example": True,
        "https://evil.example": 403,
    }


def test_plain_ws_to_a_tls_server_fails(secure_server):
    server, _ = secure_server

    async def scenario():
        with pytest.raises(Exception):  # noqa: B017 - any handshake failure will do
            await connect(server.url.replace("wss://", "ws://"), open_timeout=5)

    run(scenario())


# -- configuration ---------------------------------------------------------------------------
def test_config_precedence_toml_env_cli(tmp_path):
    toml = tmp_path / "chibi.toml"
    toml.write_text('[server]\nport = 9000\nworkers = 3\nmax_queue = 7\nallowed_origins = ["a"]\n')
    env = {"CHIBI_WORKERS": "5", "CHIBI_RATE": "2.5", "CHIBI_TOKEN": "0123456789"}
    config = load_config(str(toml), env=env, overrides={"max_queue": 9, "host": None})
    assert (config.port, config.workers, config.max_queue, config.rate) == (9000, 5, 9, 2.5)
    assert config.allowed_origins == ["a"] and config.tokens == ["0123456789"]
    assert config.host == "127.0.0.1"


@pytest.mark.parametrize(
    "toml, env, message",
    [("colour = 1", {}, "unknown setting"), ("", {"CHIBI_PORT": "x"}, "CHIBI_PORT"),
     ("", {"CHIBI_HOST": "0.0.0.0"}, "without a token"), ("", {"CHIBI_TOKENS": "short"}, "8"),
     ("", {"CHIBI_COMPRESSION": "zstd"}, "compression"),
     ("", {"CHIBI_TLS_CERT": "c.pem"}, "TLS"), ("port = [", {}, "cannot read"),
     ("", {"CHIBI_IDLE_TIMEOUT": "0"}, "idle_timeout must be > 0"),
     ("", {"CHIBI_KEEPALIVE": "0"}, "keepalive must be > 0"),
     ("", {"CHIBI_RATE": "nan"}, "rate must be >= 0")],
)  # fmt: skip
def test_bad_config_is_refused_with_a_clear_message(tmp_path, toml, env, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path), env=env)


def test_text_only_deflate_leaves_binary_frames_uncompressed():
    from websockets.frames import Frame, Opcode

    from server.transport import TextOnlyDeflate

    extension = TextOnlyDeflate(False, False, 15, 15)
    binary = Frame(Opcode.BINARY, b"\0" * 1000)
    assert extension.encode(binary) is binary
    text = extension.encode(Frame(Opcode.TEXT, b"a" * 1000))
    assert text.rsv1 and len(text.data) < 100


# -- graceful shutdown (last: it stops the TLS server) ----------------------------------------
def test_sigterm_finishes_requests_in_flight_then_closes_1001(secure_server):
    server, context = secure_server

    async def scenario():
        raw = await Raw.open(server.url, ssl=context, additional_headers={
            "Authorization": f"Bearer {TOKEN2}"})  # fmt: skip
        await raw.params_request("last", **HEAVY)
        assert (await raw.until("progress"))["stage"] == "started"
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        try:  # no new connections while draining
            await connect(server.url, ssl=context, open_timeout=3)
            refused = False
        except (OSError, InvalidStatus, TimeoutError):
            refused = True
        final = await raw.until("done", "error")
        close_code, _ = await raw.closed()
        return final, refused, close_code

    final, refused, close_code = run(scenario())
    assert final["type"] == "done" and refused and close_code == 1001
    assert server.proc.wait(30) == 0
