"""The app factory and its lifespan: start the engine and verifiers, serve, drain, stop."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from ponder.core.engine import Engine
from ponder.strategies.effort import PresetError
from ponder.strategies.policy import PolicyError
from ponder.verifiers.base import Verifier, VerifierError
from ponder.verifiers.loading import check_verifier_specs, load_configured_verifiers

from .docs import docs_urls, install_docs
from .effort import load_effort_presets
from .engine_args import EngineSettingsError
from .engines import UnknownEngineError, start_engine
from .errors import install_error_handlers
from .metrics import PonderMetrics
from .policies import PolicyStore, policy_check
from .reasoning import ReasoningParserError, configured_reasoning_format
from .remote_start import RemoteStartError
from .routers import router
from .serving import Serving
from .settings import Settings

__all__ = ["create_app", "ponder_version"]

logger = logging.getLogger(__name__)


def ponder_version() -> str:
    try:
        return version("ponder")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    verifiers: Mapping[str, Verifier] | None = None,
) -> FastAPI:
    """Build the app. With no engine given, the lifespan starts the one the settings name (and
    stops it at exit)."""
    settings = settings or Settings()
    metrics = PonderMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        try:
            # Read before the engine starts, so that a broken table or verifier option fails in a
            # second, not a minute.
            policies = PolicyStore(settings.policy_table)
            if verifiers is None:
                check_verifier_specs(settings.verifiers)
            active = engine if engine is not None else start_engine(settings)
            policy_share = settings.gpu_memory_utilization if active.uses_local_gpu else 0.0
            loaded = (
                verifiers
                if verifiers is not None
                else load_configured_verifiers(
                    active, settings.verifiers, policy_gpu_share=policy_share
                )
            )
            served_logprobs = min(settings.max_logprobs, active.max_logprobs)
            check = policy_check(loaded, settings.max_tts_n, served_logprobs)
            policies.validate_with(check)
            reasoning = configured_reasoning_format(
                settings.reasoning_parser, settings.reasoning_parser_plugin, active
            )
            presets = load_effort_presets(settings.effort_presets, loaded, settings.max_tts_n)
        except (
            ReasoningParserError,
            PresetError,
            UnknownEngineError,
            EngineSettingsError,
            RemoteStartError,
            VerifierError,
            PolicyError,
        ) as exc:
            logger.error("cannot start: %s", exc)
            raise
        metrics.build.info(
            {
                "version": ponder_version(),
                "engine_version": active.version,
                "model": active.model_name,
            }
        )
        engine_series = active.metrics_collector()
        if engine_series is not None:
            metrics.registry.register(engine_series)
        app.state.serving = Serving(
            active, loaded, settings, metrics, policies, reasoning=reasoning, presets=presets
        )
        app.state.draining = False
        logger.info("serving %s with verifiers: %s", active.model_name, ", ".join(loaded))
        try:
            yield
        finally:
            app.state.draining = True
            if verifiers is None:
                for verifier in loaded.values():
                    stop = getattr(verifier, "shutdown", None)
                    if stop is not None:
                        stop()
            if own_engine:
                active.shutdown()

    app = FastAPI(
        title="Ponder", version=ponder_version(), lifespan=lifespan, **docs_urls(settings)
    )
    app.state.settings = settings
    app.state.started = int(time.time())
    app.state.draining = True
    install_error_handlers(app)
    app.include_router(router)
    install_docs(app, settings)
    return app
