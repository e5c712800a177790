"""A verifier family's options: the keyword arguments of its constructor, checked before loading.

Operators configure verifiers with strings (`--verifier name=prm,family=qwen_prm,...`) or JSON. A
family takes exactly its constructor's keyword arguments, typed by their annotations, so the
constructor is the one place an option is declared. An option the family does not take (a
misspelling, or an option of another family) or a value of the wrong type stops start-up with a
`VerifierError` that names the verifier and the option, instead of being dropped.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from .base import VerifierError

__all__ = ["ENGINE_ARGUMENT", "checked_options", "options_model", "takes_engine"]

# The constructor argument through which a verifier gets the policy engine (judges use it); it is
# passed by the loader, never configured.
ENGINE_ARGUMENT = "engine"


@functools.cache
def options_model(cls: type) -> type[BaseModel]:
    """A pydantic model of the options `cls` takes, built from its constructor's signature."""
    init = cls.__init__  # type: ignore[misc]
    hints = typing.get_type_hints(init)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(init).parameters.items():
        if name in ("self", ENGINE_ARGUMENT) or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[name] = (hints.get(name, Any), default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    model: type[BaseModel] = create_model(f"{cls.__name__}Options", __config__=config, **fields)
    return model


def checked_options(cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` validated against what `cls` takes (values coerced to their declared types)."""
    model = options_model(cls)
    name = options.get("name", getattr(cls, "family", cls.__name__))
    try:
        valid = model.model_validate(dict(options))
    except ValidationError as exc:
        error = exc.errors()[0]
        option = ".".join(str(part) for part in error["loc"]) or "?"
        family = getattr(cls, "family", cls.__name__)
        if error["type"] == "extra_forbidden":
            takes = ", ".join(sorted(model.model_fields))
            problem = f"takes no option {option!r} (its options: {takes})"
        else:
            problem = f"option {option!r}: {error['msg']}"
        raise VerifierError(f"verifier {name!r} (family {family}) {problem}") from None
    return {key: getattr(valid, key) for key in valid.model_fields_set}


def takes_engine(cls: type) -> bool:
    """Whether `cls` is built with the policy engine."""
    return ENGINE_ARGUMENT in inspect.signature(cls.__init__).parameters  # type: ignore[misc]
