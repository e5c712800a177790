"""Planning: a validated OpenAI request becomes a `PreparedRequest`, or a 400 before any work.

Model and strategy are resolved, the strategy's `tts` parameters validated, and every cap checked
(context length, candidates, generated tokens, deadline, verifiers) so that a request which can
never fit is refused before it reaches the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ponder.core.engine import Engine, SamplingOptions, StructuredOutput
from ponder.core.errors import StrategyInputError
from ponder.core.reasoning import ReasoningFormat
from ponder.strategies.base import Strategy, StrategyParams
from ponder.strategies.budget import Budget
from ponder.strategies.context import StrategyContext
from ponder.strategies.effort import EffortPresets, default_presets
from ponder.strategies.factory import build_strategy
from ponder.strategies.policy import PolicyTable
from ponder.strategies.registry import strategy_class
from ponder.strategies.streaming import TokenStreaming
from ponder.verifiers.base import Question, Verifier

from .effort import EffortChoice, apply_reasoning_fields
from .errors import APIError, validation_error
from .metrics import PonderMetrics
from .output_format import OutputFormatError, logit_bias_pairs
from .protocol import ChatCompletionRequest, CompletionRequest, TTSBlock, completion_id, now
from .responses import Endpoint, Outcome, tts_block
from .settings import Settings
from .temperature import SamplingTemperature, sampling_temperature

__all__ = ["PreparedRequest", "RequestPlanner", "logprobs_needed", "parse_body"]

# Per endpoint: the request field that caps generated tokens, and the prefix of response ids.
_TOKENS_PARAM: dict[Endpoint, str] = {
    "chat": "max_completion_tokens",
    "completion": "max_tokens",
    "responses": "max_output_tokens",
}
_ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl", "completion": "cmpl", "responses": "resp"}


@dataclass
class PreparedRequest:
    """A request that passed every check: nothing is left but to run it."""

    endpoint: Endpoint
    strategy: Strategy
    contexts: list[StrategyContext]
    choices: int
    stream: bool
    include_usage: bool
    top_logprobs: int | None
    response_id: str
    created: int
    model: str
    temperature: SamplingTemperature = field(default_factory=lambda: SamplingTemperature(1.0))
    effort: EffortChoice | None = None
    # vLLM's include_reasoning: whether `message.reasoning` is returned.
    include_reasoning: bool = True

    @property
    def strategy_name(self) -> str:
        return self.strategy.name

    def tts(self, outcomes: Sequence[Outcome]) -> TTSBlock:
        block = tts_block(self.strategy_name, outcomes, trace=self.strategy.params.return_trace)
        update = self.temperature.report()
        if self.effort is not None:
            update["effort"] = self.effort.report()
        forced = [c.forcing.report() for c in self.contexts if c.forcing.rounds]
        if forced:
            update["thinking"] = {k: sum(f[k] for f in forced) for k in forced[0]}
        return block.model_copy(update=update)


def logprobs_needed(params: StrategyParams, verifiers: Mapping[str, Verifier]) -> dict[str, int]:
    """Alternatives per token a request will ask the engine for, by the `tts` field responsible:
    the strategy's own (token beam search reads 2 x width) and its verifiers' (a judge reads 20).
    """
    needs = dict(params.top_logprobs_needed())
    for param, name in params.verifier_names().items():
        verifier = verifiers.get(name)
        if verifier is not None and verifier.top_logprobs:
            needs[param] = max(needs.get(param, 0), verifier.top_logprobs)
    return needs


def parse_body(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


class RequestPlanner:
    def __init__(
        self,
        engine: Engine,
        verifiers: Mapping[str, Verifier],
        settings: Settings,
        metrics: PonderMetrics,
        policy: Callable[[], PolicyTable],
        reasoning: ReasoningFormat | None = None,
        presets: EffortPresets | None = None,
    ) -> None:
        self.engine = engine
        self.reasoning = reasoning
        self.presets = presets or default_presets()
        self.verifiers = verifiers
        self.settings = settings
        self.metrics = metrics
        self.policy = policy
        # What the server serves: the flag, and never more than the engine can.
        self.max_logprobs = min(settings.max_logprobs, engine.max_logprobs)

    def check_model(self, requested: str) -> None:
        """404 unless `requested` (`MODEL` or `MODEL@STRATEGY`) names the served model.

        The serving layer calls this before it renders or tokenizes the prompt, so a request
        for another model costs nothing.
        """
        model = requested.partition("@")[0]
        if model != self.engine.model_name:
            raise APIError(
                404,
                f"the model {model!r} does not exist; this server serves "
                f"{self.engine.model_name!r}",
                param="model",
                code="model_not_found",
            )

    def _resolve_strategy(
        self, req: ChatCompletionRequest | CompletionRequest
    ) -> tuple[Strategy, EffortChoice | None]:
        self.check_model(req.model)
        suffix = req.model.partition("@")[2]
        chat = req if isinstance(req, ChatCompletionRequest) else None
        tts, effort = apply_reasoning_fields(
            dict(req.tts or {}),
            strategy_named=bool(suffix),
            effort=chat.reasoning_effort if chat else None,
            thinking_token_budget=chat.thinking_token_budget if chat else None,
            presets=self.presets,
            temperature_set="temperature" in req.model_fields_set,
            can_think=chat is not None and self.reasoning is not None,
        )
        named = tts.get("strategy")
        if suffix and named and named != suffix:
            raise APIError(
                400,
                f"the model name asks for strategy {suffix!r} but tts.strategy is {named!r}",
                param="tts.strategy",
            )
        tts["strategy"] = named or suffix or "none"
        if not isinstance(tts["strategy"], str):
            raise APIError(400, "tts.strategy must be a string", param="tts.strategy")
        try:
            cls = strategy_class(tts["strategy"])
            params: StrategyParams = cls.Params.model_validate(tts)
            return build_strategy(params, policy=self.policy), effort
        except StrategyInputError as exc:
            param = "model" if suffix and not named else exc.param
            raise APIError(400, str(exc), param=param) from None
        except ValidationError as exc:
            raise validation_error(exc, prefix="tts") from None

    def _output_format(
        self, req: ChatCompletionRequest | CompletionRequest, strategy: Strategy
    ) -> tuple[StructuredOutput | None, tuple[tuple[int, float], ...]]:
        """The request's structured-output constraint and logit bias, checked against what the
        engine and the strategy can do."""
        try:
            logit_bias = logit_bias_pairs(req.logit_bias, self.engine.vocab_size)
        except OutputFormatError as exc:
            raise APIError(400, str(exc), param=exc.param) from None
        structured = req.structured_output()
        if structured is not None and not strategy.samples_whole_answers:
            raise APIError(
                400,
                f"response_format {structured.kind!r} constrains whole answers, and strategy "
                f"{strategy.name!r} continues partial ones; use none, best_of_n or "
                "self_consistency",
                param="response_format",
            )
        return structured, logit_bias

    def plan(
        self,
        req: ChatCompletionRequest | CompletionRequest,
        endpoint: Endpoint,
        prompts: list[tuple[list[int], Question]],
        prompt_param: str,
    ) -> PreparedRequest:
        strategy, effort = self._resolve_strategy(req)
        s = self.settings
        tokens_param = _TOKENS_PARAM[endpoint]
        longest = max(len(ids) for ids, _ in prompts)
        room = self.engine.max_model_len - longest
        if room < 1 or any(not ids for ids, _ in prompts):
            raise APIError(
                400,
                f"the prompt has {longest} tokens; this model's context is "
                f"{self.engine.max_model_len} tokens and the prompt must be non-empty and leave "
                "room to generate",
                param=prompt_param,
                code="context_length_exceeded",
            )
        requested = req.requested_max_tokens()
        max_tokens = requested if requested is not None else min(s.default_max_tokens, room)
        if max_tokens > room:
            raise APIError(
                400,
                f"{tokens_param}={max_tokens} does not fit: the prompt has {longest} tokens and "
                f"the model's context is {self.engine.max_model_len}",
                param=tokens_param,
                code="context_length_exceeded",
            )
        top_logprobs = req.requested_logprobs()
        if top_logprobs is not None and top_logprobs > self.max_logprobs:
            raise APIError(
                400, f"at most {self.max_logprobs} log-probs per token are served", param="logprobs"
            )
        params = strategy.params
        for param, name in params.verifier_names().items():
            if name not in self.verifiers:
                known = ", ".join(sorted(self.verifiers)) or "none"
                raise APIError(
                    400, f"verifier {name!r} is not loaded; loaded verifiers: {known}", param=param
                )
        for param, wanted in logprobs_needed(params, self.verifiers).items():
            if wanted > self.max_logprobs:
                raise APIError(
                    400,
                    f"{param} needs {wanted} log-probs per token; this server serves at most "
                    f"{self.max_logprobs} (--max-logprobs)",
                    param=param,
                )
        explored = strategy.candidates()
        candidates = max(explored, req.n)
        if candidates > s.max_tts_n:
            param = "n" if req.n > explored else "tts.n"
            raise APIError(
                400,
                f"this request explores {candidates} candidates; the server allows {s.max_tts_n}",
                param=param,
            )
        if not isinstance(strategy, TokenStreaming) and req.n > explored:
            raise APIError(
                400,
                f"n={req.n} choices cannot come from {explored} candidates; raise tts.n or lower n",
                param="n",
            )
        planned = strategy.planned_tokens(max_tokens, req.n) * len(prompts)
        if params.budget.max_tokens is not None:
            planned = min(planned, params.budget.max_tokens * len(prompts))
        if planned > s.max_request_tokens:
            raise APIError(
                400,
                f"this request may generate up to {planned} tokens; the server allows "
                f"{s.max_request_tokens} per request (lower {tokens_param} or tts.n, or set "
                "tts.budget.max_tokens)",
                param=tokens_param,
            )
        deadline = params.budget.deadline_s
        if deadline is not None and deadline > s.max_deadline_s:
            raise APIError(
                400,
                f"tts.budget.deadline_s may be at most {s.max_deadline_s:g}",
                param="tts.budget.deadline_s",
            )
        structured, logit_bias = self._output_format(req, strategy)
        requested_temperature = req.temperature
        if effort is not None and effort.temperature is not None:
            requested_temperature = effort.temperature
        temperature = sampling_temperature(
            strategy, requested_temperature, req.n, s.exploration_temperature
        )
        options = SamplingOptions(
            max_tokens=max_tokens,
            temperature=temperature.value,
            top_p=req.top_p,
            top_k=req.top_k,
            min_p=req.min_p,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            repetition_penalty=req.repetition_penalty,
            stop=req.stop_sequences(),
            logprobs=top_logprobs,
            seed=req.seed,
            min_tokens=min(req.min_tokens, max_tokens),
            ignore_eos=req.ignore_eos,
            logit_bias=logit_bias,
            structured=structured,
        )
        response_id = completion_id(_ID_PREFIX[endpoint])
        started = time.monotonic()
        contexts = [
            StrategyContext(
                engine=self.engine,
                verifiers=self.verifiers,
                question=question,
                prompt_token_ids=ids,
                options=options,
                budget=Budget(params.budget, started=started),
                choices=req.n,
                request_id=f"{response_id}-{i}",
                scoring=params.scoring(),
                on_verifier_call=self.metrics.observe_verifier,
                reasoning=self.reasoning if endpoint != "completion" else None,
                thinking=params.thinking(),
            )
            for i, (ids, question) in enumerate(prompts)
        ]
        return PreparedRequest(
            endpoint=endpoint,
            strategy=strategy,
            contexts=contexts,
            choices=req.n,
            stream=req.stream,
            include_usage=req.include_usage,
            top_logprobs=top_logprobs,
            response_id=response_id,
            created=now(),
            model=req.model,
            temperature=temperature,
            effort=effort,
            include_reasoning=not isinstance(req, ChatCompletionRequest) or req.include_reasoning,
        )
