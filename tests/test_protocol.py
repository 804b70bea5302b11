"""The sans-I/O protocol: framing, decoding, the server session's state machine, fuzzing."""

import hashlib
import json
import os
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.protocol import (
    CLOSE_POLICY,
    IMAGE_ERROR_CODES,
    MAGIC,
    PROTOCOL_ERROR_CODES,
    Admit,
    Authenticate,
    BlobAssembler,
    Cancel,
    Close,
    ProtocolError,
    Send,
    ServerSession,
    SessionLimits,
    Submit,
    blob_digest,
    decode_frame,
    decode_json,
    encode_blob,
    encode_frame,
    encode_json,
)


def sent(events):
    """The JSON messages among the events (binary frames decoded to their headers)."""
    out = []
    for event in events:
        if isinstance(event, Send):
            if isinstance(event.data, str):
                out.append(json.loads(event.data))
            else:
                frame = decode_frame(event.data)
                out.append({"binary": frame.kind, "id": frame.id, "index": frame.index})
    return out


def open_session(**limits):
    session = ServerSession(limits=SessionLimits(**limits), authenticated=True)
    (welcome,) = sent(session.receive_text(encode_json({"type": "hello", "version": 1})))
    assert welcome["type"] == "welcome" and welcome["version"] == 1
    return session


def request(session, request_id="r1", source="params", **extra):
    message = {"type": "request", "id": request_id, "source": source, **extra}
    if source == "params":
        message.setdefault("params", {})
    return session.receive_text(encode_json(message))


# -- framing ------------------------------------------------------------------------
@pytest.mark.parametrize("size, chunk", [(0, 1024), (1, 1024), (5000, 1024), (4096, 1024)])
def test_blob_round_trip_through_chunks(size, chunk):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frames = encode_blob("abc", "model", data, chunk, item=2)
    assert len(frames) == max(1, -(-size // chunk))
    first = decode_frame(frames[0])
    assert (first.id, first.kind, first.item, first.size) == ("abc", "model", 2, size)
    assert first.checksums == {"sha256": hashlib.sha256(data).hexdigest()}
    assembler = BlobAssembler(first, max_bytes=size)
    results = [assembler.add(decode_frame(frame)) for frame in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == data


def test_a_blob_of_tiny_chunks_holds_about_its_own_size():
    """A photo sent 2 bytes a chunk (as many chunks as bytes are allowed): the assembler
    holds about the bytes received, not a Python object per chunk (~28x the photo)."""
    data = os.urandom(200_000)
    frames = [decode_frame(frame) for frame in encode_blob("t", "photo", data, 2)]
    assembler = BlobAssembler(frames[0], max_bytes=len(data))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for frame in frames[:-1]:
            assert assembler.add(frame) is None
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 2 * len(data), held
    assert assembler.add(frames[-1]) == data


def test_frame_layout_is_magic_length_json_payload():
    frame = encode_frame({"id": "x", "kind": "photo"}, b"PAYLOAD")
    assert frame[:4] == b"CHB1"
    (length,) = struct.unpack(">I", frame[4:8])
    assert json.loads(frame[8 : 8 + length]) == {"id": "x", "kind": "photo"}
    assert frame[8 + length :] == b"PAYLOAD"


def test_assembler_rejects_bad_checksum_out_of_order_and_oversize():
    data = b"x" * 3000
    frames = [decode_frame(f) for f in encode_blob("a", "photo", data, 1024)]
    with pytest.raises(ProtocolError) as exc:
        BlobAssembler(frames[0], max_bytes=2999)
    assert exc.value.code == "payload_too_large"
    assembler = BlobAssembler(frames[0], max_bytes=3000)
    assembler.add(frames[0])
    with pytest.raises(ProtocolError) as exc:
        assembler.add(frames[2])
    assert exc.value.code == "bad_message"
    for checksum in ("sha256", "crc32"):
        digest = blob_digest(data, checksum)
        bad = encode_frame({**_header(frames[0]), checksum: "0" * len(digest)}, data)
        frame = decode_frame(bad)
        with pytest.raises(ProtocolError) as exc:
            BlobAssembler(frame, 3000).add(frame)
        assert exc.value.code == "checksum_mismatch", checksum


@pytest.mark.parametrize("size", [0, 1, 3000])
def test_crc32_blobs_carry_zlibs_crc_and_are_checked(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frames = [decode_frame(f) for f in encode_blob("a", "model", data, 1024, checksum="crc32")]
    assert frames[0].checksums == {"crc32": f"{zlib.crc32(data):08x}"}  # the standard CRC-32
    assembler = BlobAssembler(frames[0], max_bytes=size)
    assert [assembler.add(frame) for frame in frames][-1] == data
    flipped = bytes([data[0] ^ 1]) + data[1:] if data else b"x"
    header = {**_header(frames[0]), "size": len(flipped), "crc32": frames[0].checksums["crc32"]}
    frame = decode_frame(encode_frame(header, flipped))
    with pytest.raises(ProtocolError) as exc:
        BlobAssembler(frame, len(flipped)).add(frame)
    assert exc.value.code == "checksum_mismatch"


def _header(frame):
    return {"id": frame.id, "kind": frame.kind, "index": 0, "count": 1, "offset": 0,
            "size": frame.size}  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"CHB1",
        b"XXXX\x00\x00\x00\x02{}",
        MAGIC + struct.pack(">I", 1) + b"{",
        MAGIC + struct.pack(">I", 100) + b"{}",
        MAGIC + struct.pack(">I", 5000) + b"{}" * 2500,
        MAGIC + struct.pack(">I", 4) + b"\xff\xfe{}",
        MAGIC + struct.pack(">I", 2) + b"[]",
        encode_frame(
            {"id": "bad id!", "kind": "photo", "index": 0, "count": 1, "size": 0, "offset": 0}
        ),  # fmt: skip
        encode_frame({"id": "a", "kind": "video", "index": 0, "count": 1, "size": 0, "offset": 0}),
        encode_frame({"id": "a", "kind": "photo", "index": 1, "count": 1, "size": 9, "offset": 0}),
        encode_frame(
            {"id": "a", "kind": "photo", "index": 0, "count": 1, "size": 2, "offset": 0}, b"abc"
        ),  # fmt: skip
        encode_frame(
            {"id": "a", "kind": "photo", "index": True, "count": 1, "size": 0, "offset": 0}
        ),  # fmt: skip
        encode_frame(
            {
                "id": "a",
                "kind": "photo",
                "index": 0,
                "count": 1,
                "size": 0,
                "offset": 0,
                "sha256": "XYZ",
            }
        ),  # fmt: skip
    ],
)
def test_bad_binary_frames_raise_bad_message(data):
    with pytest.raises(ProtocolError) as exc:
        decode_frame(data)
    assert exc.value.code == "bad_message"


@pytest.mark.parametrize(
    "text, code",
    [("", "invalid_json"), ("{", "invalid_json"), ("[1]", "bad_message"),
     ('{"type": 3}', "bad_message"), ("x" * 70000, "frame_too_large"),
     ("[" * 100000 + "]" * 100000, "frame_too_large"), ("[" * 50000, "invalid_json")],
)  # fmt: skip
def test_bad_text_messages(text, code):
    with pytest.raises(ProtocolError) as exc:
        decode_json(text, 65536)
    assert exc.value.code == code


# -- the session --------------------------------------------------------------------
def test_hello_asks_the_app_to_authenticate_and_refuses_a_bad_token():
    session = ServerSession()
    events = session.receive_text(encode_json({"type": "hello", "version": 1, "token": "t0k"}))
    assert events == [Authenticate("t0k")]
    events = session.authenticate(False)
    assert sent(events)[0]["code"] == "unauthorized" and sent(events)[0]["fatal"] is True
    assert events[-1] == Close(CLOSE_POLICY, "unauthorized")
    assert session.state == "closed"
    assert session.receive_text(encode_json({"type": "ping"})) == []


@pytest.mark.parametrize("version", [0, 2, "1", None, True, 1.5])
def test_unknown_version_is_refused_with_the_supported_list(version):
    session = ServerSession(authenticated=True)
    events = session.receive_text(encode_json({"type": "hello", "version": version}))
    error = sent(events)[0]
    assert error["code"] == "unsupported_version" and error["supported"] == [1]
    assert isinstance(events[-1], Close) and events[-1].code == CLOSE_POLICY


def test_anything_before_hello_is_fatal_and_a_second_hello_is_not():
    for first in ('{"type": "ping"}', "not json", '{"type": "nope"}'):
        session = ServerSession(authenticated=True)
        events = session.receive_text(first)
        assert sent(events)[0]["fatal"] is True and isinstance(events[-1], Close)
    session = ServerSession(authenticated=True)
    assert isinstance(session.receive_bytes(b"CHB1")[-1], Close)
    session = open_session()
    (error,) = sent(session.receive_text(encode_json({"type": "hello", "version": 1})))
    assert error["code"] == "wrong_state" and error["fatal"] is False


def test_client_chunk_size_is_capped_by_the_server():
    session = ServerSession(limits=SessionLimits(chunk_bytes=4096), authenticated=True)
    hello = {"type": "hello", "version": 1, "max_chunk_bytes": 2048}
    assert sent(session.receive_text(encode_json(hello)))[0]["chunk_bytes"] == 2048
    session = ServerSession(limits=SessionLimits(chunk_bytes=4096), authenticated=True)
    hello["max_chunk_bytes"] = 10**9
    assert sent(session.receive_text(encode_json(hello)))[0]["chunk_bytes"] == 4096


def test_params_request_is_admitted_then_submitted_then_answered_in_order():
    session = open_session(chunk_bytes=1024)
    events = request(session, params={"hair_style": "bob"}, options={"format": "glb"})
    assert len(events) == 1 and isinstance(events[0], Admit)
    assert events[0].options["format"] == "glb" and events[0].options["quality"] == "default"
    events = session.accept("r1", queued=3)
    assert sent(events) == [{"type": "accepted", "id": "r1", "queued": 3}]
    assert isinstance(events[1], Submit) and events[1].params["hair_style"] == "bob"
    assert sent(session.progress("r1", "built", item=0))[0]["stage"] == "built"
    model = b"m" * 2500
    events = sent(session.result("r1", [{"format": "glb", "model": model, "preview": b"png"}]))
    kinds = [m.get("type") or m["binary"] for m in events]
    assert kinds == ["result", "model", "model", "model", "preview", "done"]
    assert events[0]["model"] == {"size": 2500, "chunks": 3,
                                  "sha256": hashlib.sha256(model).hexdigest()}  # fmt: skip
    assert session.progress("r1", "built") == [] and session.fail("r1", "timeout", "x") == []
    assert session.pop_finished() == [("r1", "ok")]


@pytest.mark.parametrize(
    "offered, chosen",
    [(None, "sha256"), (["crc32", "sha256"], "crc32"), (["sha256", "crc32"], "sha256"),
     (["xxh3", "crc32"], "crc32"), (["xxh3"], "sha256"), ([], "sha256")],
)  # fmt: skip
def test_hello_picks_the_first_checksum_the_server_knows_and_results_carry_it(offered, chosen):
    session = ServerSession(limits=SessionLimits(chunk_bytes=1024), authenticated=True)
    hello = {"type": "hello", "version": 1}
    if offered is not None:
        hello["checksums"] = offered
    (welcome,) = sent(session.receive_text(encode_json(hello)))
    assert welcome["checksum"] == chosen
    request(session, params={})
    assert any(isinstance(e, Submit) for e in session.accept("r1"))
    assert session.checksum == chosen  # the app hands it to the worker, which computes it
    model = b"m" * 1500
    digest = blob_digest(model, chosen)
    events = session.result("r1", [{"format": "glb", "model": model, "digests": {"model": digest}}])
    result, *_, done = sent(events)
    assert result["model"] == {"size": 1500, "chunks": 2, chosen: digest}
    chunks = [decode_frame(event.data) for event in events if isinstance(event.data, bytes)]
    assert [chunk.checksums for chunk in chunks] == [{chosen: digest}] * 2
    assert done["type"] == "done"


@pytest.mark.parametrize("offered", ["crc32", [1], {"crc32": True}])
def test_hello_with_a_malformed_checksum_list_is_refused(offered):
    session = ServerSession(authenticated=True)
    hello = {"type": "hello", "version": 1, "checksums": offered}
    error, close = session.receive_text(encode_json(hello))
    assert json.loads(error.data)["code"] == "bad_message" and isinstance(close, Close)


@pytest.mark.parametrize(
    "message, code, field",
    [
        ({"source": "params", "params": {"shape": {"eye_size": 2}}}, "invalid_params",
         "shape.eye_size"),
        ({"source": "params", "params": "bob"}, "invalid_params", ""),
        ({"source": "params", "params": {"wings": 1}}, "invalid_params", "wings"),
        ({"source": "params", "options": {"format": "fbx"}}, "invalid_option", None),
        ({"source": "params", "options": {"fromat": "glb"}}, "invalid_option", None),
        ({"source": "params", "options": {"all_faces": "yes"}}, "invalid_option", None),
        ({"source": "params", "options": {"thumbnail": 0}}, "invalid_option", None),
        ({"source": "params", "options": []}, "invalid_option", None),
        ({"source": "video"}, "bad_message", None),
    ],
)  # fmt: skip
def test_bad_requests_end_with_their_id_and_code(message, code, field):
    session = open_session()
    (error,) = sent(request(session, **message))
    assert (error["id"], error["code"]) == ("r1", code)
    assert error.get("field") == (field or None)
    assert session.requests == {}


def test_duplicate_and_unknown_ids_do_not_end_anything():
    session = open_session()
    request(session)
    (error,) = sent(request(session))
    assert (error["id"], error["code"], error["ref"]) == (None, "duplicate_id", "r1")
    (error,) = sent(session.receive_text(encode_json({"type": "cancel", "id": "zz"})))
    assert (error["id"], error["code"], error["ref"]) == (None, "unknown_id", "zz")
    assert list(session.requests) == ["r1"]
    (error,) = sent(request(session, request_id="bad id"))
    assert (error["id"], error["code"]) == (None, "bad_message")


def test_cancel_ends_the_request_and_tells_the_app():
    session = open_session()
    request(session)
    session.accept("r1")
    events = session.receive_text(encode_json({"type": "cancel", "id": "r1"}))
    assert sent(events)[0]["code"] == "cancelled" and events[-1] == Cancel("r1")
    assert session.result("r1", [{"format": "glb", "model": b"x"}]) == []


def test_in_flight_limit_answers_busy():
    session = open_session(max_in_flight=2)
    request(session, "a")
    request(session, "b")
    (error,) = sent(request(session, "c"))
    assert (error["id"], error["code"]) == ("c", "busy")
    session.fail("a", "no_face", "none")
    assert isinstance(request(session, "c")[0], Admit)


def test_photo_request_collects_chunks_then_submits():
    session = open_session(max_photo_bytes=5000)
    request(session, source="photo")
    assert [type(e) for e in session.accept("r1")] == [Send]
    photo = bytes(range(256)) * 12
    frames = encode_blob("r1", "photo", photo, 1024)
    for frame in frames[:-1]:
        assert session.receive_bytes(frame) == []
    (submit,) = session.receive_bytes(frames[-1])
    assert isinstance(submit, Submit) and submit.photo == photo
    (error,) = sent(session.receive_bytes(frames[0]))  # the photo is complete already
    assert (error["code"], error["ref"]) == ("wrong_state", "r1")


@pytest.mark.parametrize(
    "photo, max_bytes, code",
    [(b"x" * 6000, 5000, "payload_too_large"), (b"x" * 100, 5000, "checksum_mismatch")],
)
def test_bad_photo_blobs_end_the_request(photo, max_bytes, code):
    session = open_session(max_photo_bytes=max_bytes)
    request(session, source="photo")
    session.accept("r1")
    (frame,) = encode_blob("r1", "photo", photo, 10000)
    if code == "checksum_mismatch":
        header = {**_header(decode_frame(frame)), "sha256": "a" * 64}
        frame = encode_frame(header, photo)
    events = session.receive_bytes(frame)
    assert sent(events)[0]["code"] == code and sent(events)[0]["id"] == "r1"
    assert events[-1] == Cancel("r1")
    assert session.receive_bytes(frame) == []  # later chunks of an ended request: dropped


def test_photo_chunks_for_unknown_ids_and_params_requests_are_refused():
    session = open_session()
    (error,) = sent(session.receive_bytes(encode_blob("ghost", "photo", b"x", 1024)[0]))
    assert (error["code"], error["ref"]) == ("unknown_id", "ghost")
    request(session)
    session.accept("r1")
    (error,) = sent(session.receive_bytes(encode_blob("r1", "photo", b"x", 1024)[0]))
    assert error["code"] == "wrong_state"


def test_abort_ends_every_request_then_closes():
    session = open_session()
    request(session, "a")
    request(session, "b")
    events = session.abort("idle_timeout", "idle", close_code=1000)
    assert [m["id"] for m in sent(events)] == ["a", "b", None]
    assert events[-1] == Close(1000, "idle_timeout")


def test_error_codes_are_unique_snake_case():
    codes = PROTOCOL_ERROR_CODES + IMAGE_ERROR_CODES
    assert len(set(codes)) == len(codes)
    assert all(code.isidentifier() and code.islower() for code in codes)


def test_every_error_code_is_documented():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "server" / "PROTOCOL.md").read_text()
    for code in PROTOCOL_ERROR_CODES + IMAGE_ERROR_CODES:
        assert f"| `{code}` |" in text, code


# -- fuzzing: the decoder and the session raise nothing but ProtocolError --------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
header_dicts = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=70), st.integers(), st.just("r1")),
        "kind": st.sampled_from(["photo", "model", "preview", "x", 1]),
        "index": st.integers(-2, 5) | json_values,
        "count": st.integers(-1, 5) | json_values,
        "size": st.integers(-1, 10_000) | json_values,
        "offset": st.integers(-1, 10_000) | json_values,
        "sha256": st.text(max_size=64) | json_values,
        "crc32": st.text("0123456789abcdefX", max_size=9) | json_values,
        "item": st.integers(-1, 3) | json_values,
    },
)
FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_decode_frame_raw_bytes(data):
    try:
        decode_frame(MAGIC + data)
        decode_frame(data)
    except ProtocolError:
        pass


@FUZZ
@given(header_dicts, st.binary(max_size=64))
def test_fuzz_decode_frame_headers(header, payload):
    try:
        frame = decode_frame(encode_frame(header, payload))
    except ProtocolError as exc:
        assert exc.code in PROTOCOL_ERROR_CODES
        return
    try:
        BlobAssembler(frame, max_bytes=5000).add(frame)
    except ProtocolError as exc:
        assert exc.code in PROTOCOL_ERROR_CODES


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_decode_json(text):
    try:
        decode_json(text, 1000)
    except ProtocolError as exc:
        assert exc.code in PROTOCOL_ERROR_CODES


client_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["hello", "request", "cancel", "ping", "bogus"])},
    optional={
        "version": st.sampled_from([1, 2]) | json_values,
        "id": st.sampled_from(["r1", "r2", "x" * 65]) | json_values,
        "source": st.sampled_from(["photo", "params"]) | json_values,
        "params": st.fixed_dictionaries({}, optional={"hair_style": json_values,
                                                      "shape": json_values}) | json_values,
        "options": st.fixed_dictionaries({}, optional={"format": json_values,
                                                       "all_faces": json_values}) | json_values,
        "max_chunk_bytes": json_values,
        "checksums": st.lists(st.sampled_from(["crc32", "sha256", "md5"])) | json_values,
        "token": json_values,
    },
)  # fmt: skip


@FUZZ
@given(st.lists(client_messages | st.binary(max_size=80) | st.text(max_size=40), max_size=8))
def test_fuzz_session_never_raises(messages):
    session = ServerSession(limits=SessionLimits(max_in_flight=2), authenticated=True)
    session.receive_text(encode_json({"type": "hello", "version": 1}))
    for message in messages:
        if isinstance(message, dict):
            events = session.receive_text(json.dumps(message))
        elif isinstance(message, bytes):
            events = session.receive_bytes(message)
        else:
            events = session.receive_text(message)
        for event in events:
            if isinstance(event, Admit):
                session.accept(event.id)
            if isinstance(event, Send) and isinstance(event.data, str):
                reply = json.loads(event.data)
                assert reply["type"] != "error" or reply["code"] in PROTOCOL_ERROR_CODES
