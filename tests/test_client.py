"""The Python client (`server.client`) against the real server, where its own behaviour matters:
keepalive between blocking calls, and what it keeps of errors no request owns."""

from __future__ import annotations

import asyncio
import time

import pytest
from server_harness import ServerProcess

from server.client import NOTICES_KEPT, ChibiClient, ChibiServerError, SyncChibiClient

KEEPALIVE_S = 0.3


@pytest.fixture(scope="module")
def server():
    # pings every 0.3 s, answered within 0.3 s, or the server drops the client with 1011
    with ServerProcess("--workers", "1", "--keepalive", str(KEEPALIVE_S)) as running:
        yield running


def test_sync_client_stays_connected_while_the_caller_does_other_work(server):
    with SyncChibiClient(server.url) as client:
        first = client.generate(params={}, format="glb")
        time.sleep(8 * KEEPALIVE_S)  # the caller's own work, no call in progress
        assert client.ping() < 5
        second = client.generate(params={}, format="glb")
    assert first.data == second.data and first.data[:4] == b"glTF"
    assert server.health()["connections"] == 0


def test_notices_keep_only_the_latest(server):
    async def scenario() -> ChibiClient:
        async with await ChibiClient.connect(server.url) as client:
            for number in range(NOTICES_KEPT + 50):  # each answers unknown_id, owned by none
                await client.cancel(f"gone{number}")
            await client.ping()  # answered after every cancel's error
            return client

    client = asyncio.run(scenario())
    assert len(client.notices) == NOTICES_KEPT
    assert {notice["code"] for notice in client.notices} == {"unknown_id"}
    assert client.notices[-1]["ref"] == f"gone{NOTICES_KEPT + 49}"


def test_requests_over_the_servers_limits_fail_at_once(server):
    """A request message over max_json_bytes: the server answers it frame_too_large without
    an id (it does not read it), so the client waited forever; it is refused before sending,
    as a photo over max_photo_bytes is (it was uploaded whole first)."""

    async def scenario() -> tuple[str, str]:
        async with await ChibiClient.connect(server.url) as client:
            limit = client.welcome["limits"]["max_json_bytes"]
            with pytest.raises(ChibiServerError) as error:
                await asyncio.wait_for(client.generate(params={"name": "x" * limit}), 10)
            photo = b"x" * (client.welcome["limits"]["max_photo_bytes"] + 1)
            with pytest.raises(ChibiServerError) as too_big:
                await asyncio.wait_for(client.generate(photo), 10)
            assert too_big.value.code == "payload_too_large" and not client.pending
            result = await client.generate(params={}, format="glb")  # the connection is fine
            return error.value.code, result.format

    assert asyncio.run(scenario()) == ("frame_too_large", "glb")
