"""Engines by name: the `engine` setting chooses what serves the policy model.

The app asks this module for an engine and then only talks to it through the `Engine` protocol
(`ponder.core.engine`), which also says what the server needs to know of it (CPU or device,
version, log-probs served, shutdown). Adding an engine is a module with a `start(settings)`
function and one line in `ENGINES`; nothing is imported until that engine is chosen, so a
server that never starts vLLM in process never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ponder.core.engine import Engine

from .settings import Settings

__all__ = ["ENGINES", "UnknownEngineError", "start_engine"]

# Engine name -> "module:function" that starts it from the settings.
ENGINES: dict[str, str] = {
    "vllm": "ponder.server.vllm_engine:start",
    "remote": "ponder.server.remote_start:start_remote_engine",
}


class UnknownEngineError(ValueError):
    """The settings name an engine that is not registered."""


def start_engine(settings: Settings) -> Engine:
    """Start the engine that `settings.engine` names on the configured model."""
    target = ENGINES.get(settings.engine)
    if target is None:
        known = ", ".join(sorted(ENGINES))
        raise UnknownEngineError(f"--engine {settings.engine!r} is not an engine; known: {known}")
    module_name, _, attr = target.partition(":")
    start: Callable[[Settings], Engine] = getattr(importlib.import_module(module_name), attr)
    return start(settings)
