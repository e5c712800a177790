"""The real app in process on the scripted engine, for the client's tests (sync and async)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import httpx
import pytest
from ponder_client import AsyncPonder, Ponder
from starlette.testclient import TestClient

from ponder.server.app import create_app
from ponder.server.settings import Settings
from ponder.verifiers.loading import load_configured_verifiers
from tests.scripted import ScriptedEngine

MODEL = "scripted-model"
BASE = "http://testserver"


ANSWER = "2 + 3 = 5.\n\nThe answer is 5."


def answers(prompt: str, n: int) -> list[str]:
    return [ANSWER] * n


def scripted_engine() -> ScriptedEngine:
    """Answers every prompt (strategy, judge or step) so that every strategy runs to the end."""
    return ScriptedEngine(
        texts=[ANSWER] * 16,  # what token streams (`none`) hand out
        responder=answers,
        judge=lambda _: 0.6,
        next_tokens=lambda ids: [(ord("5"), -0.01), (0, -5.0)],
    )


def app(**settings: Any) -> Any:
    engine = scripted_engine()
    return create_app(
        Settings(**settings), engine=engine, verifiers=load_configured_verifiers(engine)
    )


def ponder_on(http: TestClient, **options: Any) -> Ponder:
    """The sync client on an app through Starlette's test client, which is an `httpx2.Client`
    (httpx's API in another package)."""
    return Ponder(BASE, http_client=cast(httpx.Client, http), **options)


@pytest.fixture
def ponder() -> Iterator[Ponder]:
    """The sync client on the app (no retries: tests that retry bring their own transport)."""
    with TestClient(app()) as http:
        yield ponder_on(http, max_retries=0)


@pytest.fixture
async def async_ponder() -> AsyncIterator[AsyncPonder]:
    served = app()
    async with served.router.lifespan_context(served):
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport) as http:
            yield AsyncPonder(BASE, http_client=http, max_retries=0)
