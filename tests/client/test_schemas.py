"""The client's typed models against what the server publishes, so that they cannot drift.

A strategy parameter added, removed or changed on the server (name, type, default, bounds,
choices) fails here until `client/ponder_client/options.py` follows; likewise a field of the
`tts` block or of a response in the server's OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from ponder_client import Ponder, models
from ponder_client.options import STRATEGY_OPTIONS, CustomStrategy, PrmBeamSearch
from pydantic import BaseModel

from ponder.server.app import create_app
from ponder.server.settings import Settings


def _resolve(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with references inlined and the prose (title, description) dropped."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolve(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        return {
            k: _resolve(v, defs)
            for k, v in schema.items()
            if k not in ("title", "description", "$defs")
        }
    if isinstance(schema, list):
        return [_resolve(item, defs) for item in schema]
    return schema


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    resolved = _resolve(schema, schema.get("$defs", {}))
    properties: dict[str, Any] = resolved["properties"]
    return properties


def test_every_strategy_the_server_lists_has_typed_options_with_its_schema(
    ponder: Ponder,
) -> None:
    listed = {s.name: s.parameters for s in ponder.strategies().data}
    assert set(listed) == set(STRATEGY_OPTIONS), "client/ponder_client/options.py lags"
    for name, server_schema in listed.items():
        cls = STRATEGY_OPTIONS[name]
        theirs = _properties(server_schema)
        ours = _properties(cls.model_json_schema())
        # The strategy's name is fixed in the client, a free string on the server.
        assert ours.pop("strategy")["const"] == name
        theirs.pop("strategy")
        assert ours == theirs, f"{name}: the client's options differ from the server's"
        assert cls.model_json_schema()["additionalProperties"] is False


def test_options_send_only_what_was_set_and_unknown_strategies_pass_through() -> None:
    options = PrmBeamSearch(n=8, verifier="arithmetic")
    assert options.to_tts() == {"strategy": "prm_beam_search", "n": 8, "verifier": "arithmetic"}
    custom = CustomStrategy(strategy="future_search", width=3)
    assert custom.to_tts() == {"strategy": "future_search", "width": 3}


# Client models named otherwise than the server's OpenAPI component with the same fields; every
# other client model is compared with the component of its own name, where the server has one
# (so `TTSProgress` and `ProgressChunk` are, once the server documents its progress chunks).
RENAMED: dict[str, str] = {
    "Usage": "UsageInfo",
    "ChatCompletion": "ChatCompletionResponse",
    "ChatCompletionMessage": "ChatCompletionMessageOut",
    "Completion": "CompletionResponse",
}


def test_response_models_have_the_fields_of_the_servers_openapi() -> None:
    components = create_app(Settings()).openapi()["components"]["schemas"]
    compared = []
    for name in models.__all__:
        model: type[BaseModel] = getattr(models, name)
        component = RENAMED.get(name, name)
        if component not in components:
            continue
        theirs = set(components[component]["properties"])
        ours = set(model.model_json_schema(mode="serialization")["properties"])
        assert ours == theirs, f"{name} vs the server's {component}"
        # What the server always sends, the client requires (or defaults).
        assert set(components[component].get("required", [])) <= ours
        compared.append(name)
    assert {
        "TTSBlock",
        "TTSPromptReport",
        "TraceCandidate",
        "DifficultyReport",
        "ProbeReport",
        "PolicyReport",
        "Usage",
        "CompletionTokensDetails",
        "PromptTokensDetails",
        "ChatCompletion",
        "ChatCompletionChoice",
        "ChatCompletionMessage",
        "Completion",
        "CompletionChoice",
    } <= set(compared)
