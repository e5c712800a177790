"""Coalescing: concurrent requests' scoring work runs in shared batches.

While one batch runs (in a worker thread, off the event loop), new items queue up; the next batch
takes all of them, up to the batch limit. Under load this fills batches without a timer, and an
idle verifier answers a lone request at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["BatchRunner"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class BatchRunner(Generic[Item, Result]):
    def __init__(self, run_batch: Callable[[list[Item]], list[Result]], max_batch: int) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches_run = 0

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            live = [(item, f) for item, f in batch if not f.cancelled()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self._run_batch, [item for item, _ in live])
            except Exception as exc:
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches_run += 1
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)
