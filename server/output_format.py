"""The request fields that shape what the engine may sample: `response_format` and `logit_bias`.

Both are checked here, before any work, so that bad input is a 400 naming the field: a JSON schema
must be a valid JSON Schema (what the engine's grammar compiler may still refuse comes back from
the engine as a 400 too), and logit-bias keys must be token ids with biases in OpenAI's range. The
results are the engine protocol's types, which both engines turn into vLLM's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ponder.core.engine import StructuredOutput

__all__ = ["MAX_LOGIT_BIAS", "OutputFormatError", "logit_bias_pairs", "structured_output"]

# OpenAI's bounds: biases in [-100, 100]; we also bound how many tokens one request may bias.
MAX_LOGIT_BIAS = 1024
_BIAS_RANGE = 100.0


class OutputFormatError(ValueError):
    """A field of the request is invalid; `param` names it (a path below the field, where known)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def structured_output(
    response_format: Mapping[str, Any] | None, param: str = "response_format"
) -> StructuredOutput | None:
    """The structured-output constraint a chat `response_format` asks for; None for text.

    Accepts OpenAI's shapes: `{"type": "text"}`, `{"type": "json_object"}` and
    `{"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}`.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return StructuredOutput("json_object")
    if kind != "json_schema":
        raise OutputFormatError(
            f"{param}.type",
            f"{param}.type must be 'text', 'json_object' or 'json_schema', not {kind!r}",
        )
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping):
        raise OutputFormatError(
            f"{param}.json_schema", f"{param} of type 'json_schema' needs a json_schema object"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise OutputFormatError(f"{param}.json_schema.name", "json_schema.name is required")
    return StructuredOutput("json_schema", json_schema_text(spec.get("schema"), param))


def json_schema_text(schema: Any, param: str) -> str:
    """The schema as JSON text, after checking that it is a valid JSON Schema."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    where = f"{param}.json_schema.schema"
    if not isinstance(schema, dict):
        raise OutputFormatError(where, "the JSON schema must be an object")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise OutputFormatError(where, f"invalid JSON schema: {exc.message}") from None
    except (RecursionError, ValueError, TypeError, LookupError):
        # A schema too deep to walk, or whose `$schema` names no known dialect.
        raise OutputFormatError(where, "invalid JSON schema") from None
    return json.dumps(schema, sort_keys=True)


def logit_bias_pairs(
    logit_bias: Mapping[str, float] | None, vocab_size: int | None = None
) -> tuple[tuple[int, float], ...]:
    """OpenAI's `logit_bias` (token id as a string to a bias) as (token id, bias) pairs.

    Keys must be token ids (within the vocabulary, when its size is given), biases in [-100, 100].
    """
    if not logit_bias:
        return ()
    if len(logit_bias) > MAX_LOGIT_BIAS:
        raise OutputFormatError("logit_bias", f"at most {MAX_LOGIT_BIAS} tokens may be biased")
    pairs = []
    for key, bias in logit_bias.items():
        token = key.strip()
        if not token.isdigit() or len(token) > 12:
            raise OutputFormatError(
                "logit_bias", f"logit_bias keys must be token ids, not {key[:20]!r}"
            )
        token_id = int(token)
        if vocab_size is not None and token_id >= vocab_size:
            raise OutputFormatError(
                "logit_bias", f"logit_bias token id {token_id} is not in [0, {vocab_size})"
            )
        if not -_BIAS_RANGE <= bias <= _BIAS_RANGE:
            raise OutputFormatError("logit_bias", "logit_bias values must be in [-100, 100]")
        pairs.append((token_id, float(bias)))
    return tuple(sorted(pairs))
