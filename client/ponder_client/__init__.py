"""ponder_client: a typed Python client for Ponder, the test-time scaling server.

    from ponder_client import Ponder, PrmBeamSearch

    with Ponder() as ponder:
        reply = ponder.chat("What is 17 * 23?", strategy=PrmBeamSearch(n=8, verifier="arithmetic"))
        print(reply.choices[0].message.content, reply.tts.verifier_calls)

It needs only httpx and pydantic, and never imports the server.
"""

from .async_client import AsyncPonder
from .client import Ponder
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PonderError,
    RateLimitError,
    ServiceUnavailableError,
)
from .models import (
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    CompletionChunk,
    ProgressChunk,
    StrategyList,
    TraceCandidate,
    TTSBlock,
    TTSProgress,
    Usage,
)
from .openai_helpers import extra_body, progress_of, tts_of
from .options import (
    MCTS,
    STRATEGY_OPTIONS,
    BeamSearch,
    BestOfN,
    Budget,
    ComputeOptimal,
    CustomStrategy,
    GraphOfThoughts,
    NoStrategy,
    PrmBeamSearch,
    SelfConsistency,
    SelfRefine,
    StrategyOptions,
    TreeOfThoughts,
)

__all__ = [
    "MCTS",
    "STRATEGY_OPTIONS",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncPonder",
    "AuthenticationError",
    "BadRequestError",
    "BeamSearch",
    "BestOfN",
    "Budget",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Completion",
    "CompletionChunk",
    "ComputeOptimal",
    "CustomStrategy",
    "GraphOfThoughts",
    "InternalServerError",
    "NoStrategy",
    "NotFoundError",
    "PayloadTooLargeError",
    "Ponder",
    "PonderError",
    "PrmBeamSearch",
    "ProgressChunk",
    "RateLimitError",
    "SelfConsistency",
    "SelfRefine",
    "ServiceUnavailableError",
    "StrategyList",
    "StrategyOptions",
    "TTSBlock",
    "TTSProgress",
    "TraceCandidate",
    "TreeOfThoughts",
    "Usage",
    "extra_body",
    "progress_of",
    "tts_of",
]
