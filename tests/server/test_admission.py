"""Admission in the engine's terms: the arithmetic of sequences and tokens, FIFO fairness, the
defaults taken from the engine, and the gauges an autoscaler reads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ponder.server.admission import Admission, AdmissionLimits, Cost, Ticket
from ponder.server.capacity import ENGINE_DEPTH, FALLBACK_MAX_NUM_SEQS, admission_limits
from ponder.server.errors import APIError
from ponder.server.metrics import PonderMetrics
from ponder.server.settings import Settings
from tests.scripted import ScriptedEngine
from tests.server.test_admission_drain import in_background, wait_for
from tests.server.test_http import CHAT, chat, metric_samples, serve


def admission(max_sequences: int, max_tokens: int | None = None, waiting: int = 8) -> Admission:
    limits = AdmissionLimits(max_sequences, max_tokens=max_tokens, max_waiting=waiting)
    return Admission(limits, PonderMetrics())


def states(tickets: list[Ticket]) -> list[str]:
    return [t.state for t in tickets]


async def test_requests_run_while_their_sequences_fit() -> None:
    a = admission(max_sequences=16)
    wide, narrow, third = a.enter(Cost(8)), a.enter(Cost(1)), a.enter(Cost(8))
    # 8 + 1 run; 8 more would make 17.
    assert states([wide, narrow, third]) == ["running", "running", "waiting"]
    assert a.in_use == Cost(9, 0) and (a.running, a.waiting) == (2, 1)
    narrow.release()
    assert third.state == "running" and a.in_use == Cost(16, 0)
    await third.acquire()  # returns at once: it already runs


async def test_tokens_bound_as_well_as_sequences() -> None:
    a = admission(max_sequences=100, max_tokens=1000)
    first, second = a.enter(Cost(2, 600)), a.enter(Cost(2, 600))
    assert states([first, second]) == ["running", "waiting"]
    first.release()
    assert second.state == "running" and a.in_use == Cost(2, 600)


async def test_a_request_wider_than_the_capacity_runs_alone() -> None:
    a = admission(max_sequences=8, max_tokens=100)
    small = a.enter(Cost(1, 10))
    huge = a.enter(Cost(64, 5000))
    assert huge.cost == Cost(8, 100)  # clamped: it can run once nothing else does
    assert huge.state == "waiting"
    small.release()
    assert huge.state == "running" and a.in_use == Cost(8, 100)


async def test_waiting_requests_start_in_arrival_order_so_wide_ones_are_not_starved() -> None:
    a = admission(max_sequences=8)
    running = [a.enter(Cost(1)) for _ in range(4)]
    wide = a.enter(Cost(8))
    narrow = [a.enter(Cost(1)) for _ in range(3)]
    # Four sequences are free, but no narrow request overtakes the wide one waiting first.
    assert wide.state == "waiting" and states(narrow) == ["waiting"] * 3
    for ticket in running[:3]:
        ticket.release()
        assert wide.state == "waiting" and states(narrow) == ["waiting"] * 3
    running[3].release()
    assert wide.state == "running" and states(narrow) == ["waiting"] * 3
    wide.release()
    assert states(narrow) == ["running"] * 3


async def test_a_waiter_that_leaves_lets_the_next_ones_start() -> None:
    a = admission(max_sequences=8)
    holder = a.enter(Cost(4))
    wide = a.enter(Cost(8))
    narrow = a.enter(Cost(2))
    waiter = asyncio.ensure_future(wide.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    wide.release()  # as the serving layer does when the client goes away
    assert narrow.state == "running" and a.in_use == Cost(6, 0)
    assert (a.running, a.waiting) == (2, 0)
    holder.release()
    narrow.release()
    assert a.in_use == Cost(0, 0) and a.in_flight == 0


async def test_acquire_waits_for_room_and_release_is_idempotent() -> None:
    a = admission(max_sequences=1)
    first, second = a.enter(Cost(1)), a.enter(Cost(1))
    waiter = asyncio.ensure_future(second.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    first.release()
    first.release()
    await asyncio.wait_for(waiter, 1)
    assert a.in_use == Cost(1, 0) and a.running == 1


async def test_the_queue_is_bounded_in_requests_and_draining_refuses() -> None:
    a = admission(max_sequences=2, waiting=1)
    a.enter(Cost(2))
    a.enter(Cost(1))
    with pytest.raises(APIError) as busy:
        a.enter(Cost(1))
    assert busy.value.status == 429
    a.close()
    with pytest.raises(APIError) as draining:
        a.enter(Cost(1))
    assert draining.value.status == 503


def test_limits_default_to_twice_what_the_engine_runs() -> None:
    engine = ScriptedEngine(max_num_seqs=128, kv_cache_tokens=90_000)
    limits = admission_limits(Settings(), engine)
    assert ENGINE_DEPTH == 2
    assert (limits.max_sequences, limits.max_tokens, limits.max_requests) == (256, 180_000, None)
    assert limits.max_waiting == 64
    unknown = admission_limits(Settings(), ScriptedEngine(max_num_seqs=None))
    assert (unknown.max_sequences, unknown.max_tokens) == (2 * FALLBACK_MAX_NUM_SEQS, None)
    chosen = Settings(max_running_sequences=5, max_running_tokens=77, max_concurrent_requests=3)
    limits = admission_limits(chosen, engine)
    assert (limits.max_sequences, limits.max_tokens, limits.max_requests) == (5, 77, 3)


def test_a_best_of_n_request_counts_n_sequences_on_metrics() -> None:
    # The prompt renders to a known number of characters (tokens) with the scripted template.
    engine = ScriptedEngine(texts=["1", "2", "3"] * 8, delay=1.0)
    with serve(engine, max_running_sequences=10) as (client, _):
        body = chat(tts={"strategy": "self_consistency", "n": 8}, max_tokens=5)
        worker, first = in_background(client, body)
        wait_for(client, "ponder_sequences_running 8.0")
        second_worker, second = in_background(client, body)
        wait_for(client, "ponder_sequences_waiting 8.0")
        during = metric_samples(client.get("/metrics").text)
        worker.join()
        second_worker.join()
        after = metric_samples(client.get("/metrics").text)
    assert first["resp"].status_code == 200 and second["resp"].status_code == 200
    prompt_tokens = first["resp"].json()["usage"]["prompt_tokens"]
    assert during[("ponder_requests_running", ())] == 1
    assert during[("ponder_requests_waiting", ())] == 1
    assert during[("ponder_reserved_tokens", ())] == 8 * (prompt_tokens + 5)
    assert during[("ponder_admission_limit", (("resource", "sequences"),))] == 10
    for name in ("sequences_running", "sequences_waiting", "reserved_tokens", "requests_running"):
        assert after[(f"ponder_{name}", ())] == 0


def test_plain_requests_count_their_n_choices() -> None:
    engine = ScriptedEngine(texts=["a"] * 3, delay=1.0)
    with serve(engine) as (client, _):
        holder: dict[str, object] = {}
        worker = threading.Thread(
            target=lambda: holder.update(resp=client.post(CHAT, json=chat(n=3, temperature=1)))
        )
        worker.start()
        wait_for(client, "ponder_sequences_running 3.0")
        worker.join()
    assert holder["resp"].status_code == 200  # type: ignore[attr-defined]
