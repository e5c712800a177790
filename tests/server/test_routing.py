"""The remote server pool: request and prefix affinity, least load, health transitions, failover."""

from __future__ import annotations

import asyncio

import pytest

from ponder.core.engine import EngineError, SamplingOptions
from ponder.server.routing import ServerPool, affinity_key
from tests.server.fake_vllm import FakeVLLM, remote_engine

OPTIONS = SamplingOptions(max_tokens=8)
SHORT = [1, 2, 3]


def test_affinity_key_is_the_ponder_request_of_an_engine_call() -> None:
    assert affinity_key("chatcmpl-ab-12-g0") == "chatcmpl-ab-12"
    assert affinity_key("ponder-9f-v13") == "ponder-9f"
    assert affinity_key("ponder-9f") == "ponder-9f"


def test_new_requests_go_to_the_least_loaded_server_and_stay_there() -> None:
    pool = ServerPool(["http://a", "http://b"])
    first = pool.pick("r1-g0", SHORT)
    pool.started(first)
    second = pool.pick("r2-g0", SHORT)
    assert second is not first  # r1 holds a call on the first server
    pool.started(second)
    pool.started(second)
    # Later calls of r1 stay on its server even though it is no longer the least loaded.
    pool.finished(first, 0.1)
    pool.started(pool.servers[first.index])
    assert pool.pick("r2-g1", SHORT) is second
    assert pool.pick("r1-v2", SHORT) is first


def test_requests_sharing_a_long_prefix_go_to_one_server_unless_it_is_much_busier() -> None:
    pool = ServerPool(["http://a", "http://b"], prefix_tokens=4, max_imbalance=2)
    shared = [9, 9, 9, 9]
    home = pool.pick("r1-g0", [*shared, 1])
    pool.started(home)
    # Least load alone would send r2 to the other server; its prefix sends it home.
    assert pool.pick("r2-g0", [*shared, 2]) is home
    assert pool.pick("r3-g0", [7, 7, 7, 7, 1]) is not home  # another prefix: least loaded
    pool.started(home)
    pool.started(home)
    # Three more calls than the idle server: past the allowed imbalance, r4 goes elsewhere.
    assert pool.pick("r4-g0", [*shared, 3]) is not home


def test_a_failed_server_is_out_until_marked_healthy() -> None:
    pool = ServerPool(["http://a", "http://b"], probe_interval_s=0.0)
    pinned = pool.pick("r1-g0", SHORT)
    pool.failed(pinned)
    assert not pinned.healthy and pool.due_for_probe() == [pinned]
    # Its request moves to the other server and stays there.
    other = pool.pick("r1-g1", SHORT)
    assert other is not pinned
    pool.mark(pinned, healthy=True)
    assert pool.pick("r1-g2", SHORT) is other
    assert pool.errors.labels(str(pinned.index))._value.get() == 1


async def test_a_request_keeps_its_server_across_calls() -> None:
    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    for call in range(3):
        await engine.generate([SHORT, SHORT], OPTIONS, request_id=f"req-a-g{call}")
        await engine.generate([SHORT], OPTIONS, request_id=f"req-b-g{call}")
    a = {fake.server_of(f"req-a-g{c}-{i}") for c in range(3) for i in range(2)}
    b = {fake.server_of(f"req-b-g{c}-0") for c in range(3)}
    assert len(a) == 1 and len(b) == 1


async def test_concurrent_requests_spread_over_the_servers() -> None:
    fake = FakeVLLM(2)
    hold = asyncio.Event()
    for server in fake.servers:
        server.hold = hold
    engine = remote_engine(fake)
    calls = [
        asyncio.ensure_future(engine.generate([SHORT], OPTIONS, request_id=f"r{i}-g0"))
        for i in range(4)
    ]
    await asyncio.sleep(0.05)
    assert [s.in_flight for s in engine.pool.servers] == [2, 2]
    hold.set()
    await asyncio.gather(*calls)
    assert [len(s.bodies) for s in fake.servers] == [2, 2]


@pytest.mark.parametrize("failure", ["down", "error"])
async def test_a_call_on_a_failing_server_fails_over_and_the_server_comes_back(
    failure: str,
) -> None:
    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    await engine.generate([SHORT], OPTIONS, request_id="r1-g0")
    home = fake.server_of("r1-g0-0")
    fake.servers[home].state = failure
    # The next call of the same request goes to the other server, whole, and succeeds.
    (result,) = await engine.generate([SHORT], OPTIONS, request_id="r1-g1")
    assert result.sequences[0].text == "42"
    assert fake.server_of("r1-g1-0") == 1 - home
    assert not engine.pool.servers[home].healthy
    await engine.check_health()  # one server is enough to be ready
    fake.servers[home].state = "up"
    await engine.check_health()
    assert engine.pool.servers[home].healthy
    assert engine.pool.up.labels(str(home))._value.get() == 1


async def test_with_every_server_down_a_call_is_an_engine_error_not_a_hang() -> None:
    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    for server in fake.servers:
        server.state = "down"
    with pytest.raises(EngineError):
        await engine.generate([SHORT], OPTIONS, request_id="r1-g0")
    with pytest.raises(EngineError):
        await engine.check_health()
    with pytest.raises(EngineError):
        async for _ in engine.stream(SHORT, OPTIONS, request_id="r2-g0"):
            pass


async def test_out_servers_are_probed_and_rejoin_on_later_calls() -> None:
    fake = FakeVLLM(2)
    engine = remote_engine(fake)
    fake.servers[0].state = "down"
    await engine.generate([SHORT], OPTIONS, request_id="r1-g0")
    await engine.generate([SHORT], OPTIONS, request_id="r2-g0")
    assert not engine.pool.servers[0].healthy
    fake.servers[0].state = "up"
    await engine.generate([SHORT], OPTIONS, request_id="r3-g0")  # kicks a background probe
    await asyncio.sleep(0.05)
    assert engine.pool.servers[0].healthy
