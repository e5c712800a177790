"""Search progress on the wire: the chunks a streamed search sends before its answer.

A strategy reports each step it reaches through its context (`strategies/progress.py`); for a
streamed request the server listens (`ProgressFeed`) and sends the latest report of each prompt
as a chunk the official `openai` client parses: a `chat.completion.chunk` (or `text_completion`)
with no choices and a `tts_progress` field. A fast search reports faster than anyone can read,
so the feed keeps only the latest report per prompt and the stream sends it at most every
`progress_interval_s`, and once more before the answer. Early answers (a strategy whose answer is
settled before it ends) are kept in order and streamed at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from ponder.strategies.context import StrategyContext
from ponder.strategies.progress import EarlyAnswer, SearchProgress

__all__ = ["ProgressChunk", "ProgressFeed", "TTSProgress"]


class TTSProgress(BaseModel):
    """Ponder: where a streamed search stands, sent while it runs."""

    strategy: str = Field(
        description="The strategy reporting: the request's, or compute_optimal's chosen option."
    )
    phase: str = Field(
        description="The step just done: level, simulation, expansion, sample, score, round, "
        "probe, answer, token."
    )
    step: int = Field(description="Steps done so far (1 after the first).")
    max_steps: int | None = Field(description="The most steps the search takes; null: unknown.")
    candidates_alive: int = Field(
        description="Candidates the search still holds: live partial solutions and finished ones."
    )
    best_score: float | None = Field(
        description="The best score so far (verifier score, vote share or beam score); null: none."
    )
    completion_tokens: int = Field(description="Policy tokens this prompt has generated so far.")
    token_budget: int | None = Field(description="The request's `tts.budget.max_tokens`, if set.")
    elapsed_s: float = Field(description="Seconds since the stream started.")
    prompt_index: int = Field(0, description="Which prompt of the request (completions: a list).")


class ProgressChunk(BaseModel):
    """A stream chunk with no choices that carries `tts_progress`; OpenAI's field order."""

    id: str
    object: Literal["chat.completion.chunk", "text_completion"]
    created: int
    model: str
    choices: list[Any] = Field(default_factory=list, description="Always empty.")
    tts_progress: TTSProgress


class ProgressFeed:
    """Listens to a streamed request's contexts: their latest progress and their early answers.

    `changed` is set whenever something arrives, so the stream can wake for it.
    """

    def __init__(self, contexts: list[StrategyContext]) -> None:
        self.started = time.monotonic()
        self.changed = asyncio.Event()
        self._latest: dict[int, TTSProgress] = {}
        self._answers: list[tuple[int, EarlyAnswer]] = []
        for index, ctx in enumerate(contexts):
            ctx.on_progress = self._progress_observer(index)
            ctx.on_answer = self._answer_observer(index)

    def _progress_observer(self, index: int) -> Any:
        def observe(progress: SearchProgress) -> None:
            self._latest[index] = TTSProgress(
                **dataclasses.asdict(progress),
                elapsed_s=round(time.monotonic() - self.started, 3),
                prompt_index=index,
            )
            self.changed.set()

        return observe

    def _answer_observer(self, index: int) -> Any:
        def observe(answer: EarlyAnswer) -> None:
            self._answers.append((index, answer))
            self.changed.set()

        return observe

    @property
    def has_progress(self) -> bool:
        return bool(self._latest)

    def take_progress(self) -> list[TTSProgress]:
        """The latest report of each prompt since the last take, in prompt order."""
        taken = [self._latest[i] for i in sorted(self._latest)]
        self._latest.clear()
        return taken

    def take_answers(self) -> list[tuple[int, EarlyAnswer]]:
        """Early answers (prompt index, answer) since the last take, in the order they came."""
        taken, self._answers = self._answers, []
        return taken
