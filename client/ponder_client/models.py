"""Typed responses, stream chunks and the `tts` block, as the server sends them.

They mirror the server's response models (server/protocol.py), field for field, and
`tests/client/test_schemas.py` checks their field names against the server's OpenAPI document.
Every model accepts fields it does not declare (kept in `model_extra`), so a newer server's
additions never break an older client.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChunkChoice",
    "ChunkDelta",
    "Completion",
    "CompletionChoice",
    "CompletionChunk",
    "CompletionChunkChoice",
    "CompletionTokensDetails",
    "DifficultyReport",
    "PolicyReport",
    "ProbeReport",
    "ProgressChunk",
    "PromptTokensDetails",
    "StrategyInfo",
    "StrategyList",
    "TTSBlock",
    "TTSProgress",
    "TTSPromptReport",
    "TraceCandidate",
    "Usage",
    "VerifierInfo",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PromptTokensDetails(_Open):
    cached_tokens: int


class CompletionTokensDetails(_Open):
    # Tokens generated but not returned: other candidates, critiques, search steps.
    reasoning_tokens: int


class Usage(_Open):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None

    @property
    def returned_tokens(self) -> int:
        """Completion tokens in the choices returned (the rest were spent searching)."""
        details = self.completion_tokens_details
        return self.completion_tokens - (details.reasoning_tokens if details else 0)


class TraceCandidate(_Open):
    """One candidate the strategy explored (`tts.trace`)."""

    index: int
    text: str
    tokens: int
    finish_reason: str | None = None
    score: float | None = None
    answer: str | None = None
    step_scores: list[float | None] | None = None


class DifficultyReport(_Open):
    estimate: float | None = None
    bin: str
    source: Literal["probe", "hint"] | str


class ProbeReport(_Open):
    samples: int
    tokens: int
    votes: dict[str, float]
    reused: int | None = None


class PolicyReport(_Open):
    name: str
    version: int


class TTSPromptReport(_Open):
    """What the strategy chose and found for one prompt of a multi-prompt completion."""

    chosen_index: int | None = None
    scores: list[float | None] = Field(default_factory=list)
    verifier: str | None = None
    votes: dict[str, float] | None = None
    answer_weights: dict[str, float] | None = None
    difficulty: DifficultyReport | None = None
    chosen_strategy: str | None = None
    chosen_params: dict[str, Any] | None = None
    probe: ProbeReport | None = None
    policy: PolicyReport | None = None
    temperature: float | None = None
    temperature_replaced: bool | None = None
    trace: list[TraceCandidate] | None = None
    # Step-level searches: every node (id, parent, depth, step, tokens, score, terminal, notes).
    tree: list[dict[str, Any]] | None = None
    graph: list[dict[str, Any]] | None = None
    history: list[dict[str, Any]] | None = None

    @property
    def chosen_score(self) -> float | None:
        """The verifier's score of the first choice, where the strategy scored it."""
        i = self.chosen_index
        return self.scores[i] if i is not None and 0 <= i < len(self.scores) else None


class TTSBlock(TTSPromptReport):
    """Ponder's extension of a response: what test-time compute was spent, and on what."""

    strategy: str
    candidates: int
    generated_tokens: int
    cached_prompt_tokens: int = 0
    engine_calls: int = 0
    verifier_calls: int = 0
    verifier_tokens: int = 0
    verifier_cache_hits: int = 0
    budget_exhausted: Literal["tokens", "verifier_calls", "deadline"] | str | None = None
    per_prompt: list[TTSPromptReport] | None = None


class TTSProgress(_Open):
    """A search's state while it runs, sent in a stream before the answer."""

    strategy: str
    phase: str
    step: int
    max_steps: int | None = None
    candidates_alive: int
    best_score: float | None = None
    completion_tokens: int
    token_budget: int | None = None
    elapsed_s: float
    # Which prompt of the request it is about (a legacy completion of a list of prompts).
    prompt_index: int = 0


class ChatCompletionMessage(_Open):
    content: str | None = None
    refusal: str | None = None
    role: Literal["assistant"] = "assistant"
    # A reasoning model's thinking (the server's --reasoning-parser), vLLM's field name.
    reasoning: str | None = None


class ChatCompletionChoice(_Open):
    finish_reason: str | None = None
    index: int
    logprobs: dict[str, Any] | None = None
    message: ChatCompletionMessage


class ChatCompletion(_Open):
    id: str
    choices: list[ChatCompletionChoice]
    created: int
    model: str
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage
    tts: TTSBlock


class CompletionChoice(_Open):
    finish_reason: str | None = None
    index: int
    logprobs: dict[str, Any] | None = None
    text: str


class Completion(_Open):
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    usage: Usage
    tts: TTSBlock


class ChunkDelta(_Open):
    content: str | None = None
    role: Literal["assistant"] | None = None
    reasoning: str | None = None


class ChunkChoice(_Open):
    delta: ChunkDelta
    finish_reason: str | None = None
    index: int
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(_Open):
    """One event of a streamed chat completion. The last (with `include_usage`) has no choices,
    and carries `usage` and `tts`."""

    id: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    created: int
    model: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    usage: Usage | None = None
    tts: TTSBlock | None = None

    @property
    def text(self) -> str:
        """The content this chunk adds to the first choice."""
        return "".join(c.delta.content or "" for c in self.choices if c.index == 0)


class CompletionChunkChoice(_Open):
    finish_reason: str | None = None
    index: int
    logprobs: dict[str, Any] | None = None
    text: str = ""


class CompletionChunk(_Open):
    """One event of a streamed legacy completion."""

    id: str
    choices: list[CompletionChunkChoice] = Field(default_factory=list)
    created: int
    model: str
    object: Literal["text_completion"] = "text_completion"
    usage: Usage | None = None
    tts: TTSBlock | None = None

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.choices if c.index == 0)


class ProgressChunk(_Open):
    """A search's progress event: a chunk with no choices and Ponder's `tts_progress` field,
    which the official `openai` client also parses (as a chunk with an extra field)."""

    id: str = ""
    choices: list[Any] = Field(default_factory=list)
    created: int = 0
    model: str = ""
    object: str = "chat.completion.chunk"
    tts_progress: TTSProgress

    @property
    def progress(self) -> TTSProgress:
        return self.tts_progress


class StrategyInfo(_Open):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="The JSON schema of the strategy's `tts`.")


class VerifierInfo(_Open):
    name: str
    kind: str
    family: str | None = None
    model: str | None = None
    description: str | None = None


class StrategyList(_Open):
    """`GET /v1/strategies`: what a request may ask for."""

    object: str = "list"
    data: list[StrategyInfo]
    verifiers: list[VerifierInfo] = Field(default_factory=list)
