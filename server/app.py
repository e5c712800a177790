"""The app factory and its lifespan: start the engine and verifiers, serve, drain, stop."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI

from ponder.core.engine import Engine
from ponder.strategies.policy import PolicyError
from ponder.verifiers.base import Verifier, VerifierError
from ponder.verifiers.loading import check_gpu_shares, load_configured_verifiers

from .docs import docs_urls, install_docs
from .errors import install_error_handlers
from .metrics import PonderMetrics
from .model_store import DEFAULT_MODEL_NAME, prepare_default_model
from .policies import PolicyStore, policy_check
from .routers import router
from .serving import Serving
from .settings import Settings

__all__ = ["create_app", "ponder_version", "start_engine"]

logger = logging.getLogger(__name__)


def ponder_version() -> str:
    try:
        return version("ponder")
    except PackageNotFoundError:
        return "unknown"


def start_engine(settings: Settings) -> Engine:
    """Start the vLLM engine on the configured model, preparing the embedded one if needed."""
    from .vllm_engine import VLLMEngine

    if settings.model is None:
        path = prepare_default_model(settings.cache_dir)
        name = settings.served_model_name or DEFAULT_MODEL_NAME
    else:
        path = Path(settings.model).expanduser()
        if not (path / "config.json").is_file():
            raise SystemExit(f"--model must be a local HF model folder with a config.json: {path}")
        name = settings.served_model_name or path.name
    return VLLMEngine.start(settings, str(path), name)


def _checked_start(settings: Settings) -> Engine:
    from .vllm_engine import is_cpu_build

    # Refuse GPU shares that cannot fit before spending a minute starting the engine.
    if not is_cpu_build():
        check_gpu_shares(settings.gpu_memory_utilization, settings.verifiers)
    return start_engine(settings)


def _engine_version(engine: Engine) -> str:
    if engine.__class__.__name__ == "VLLMEngine":
        from .vllm_engine import vllm_version

        return vllm_version()
    return "n/a"


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    verifiers: Mapping[str, Verifier] | None = None,
) -> FastAPI:
    """Build the app. With no engine given, the lifespan starts vLLM (and stops it at exit)."""
    settings = settings or Settings()
    metrics = PonderMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        try:
            # Read before the engine starts, so that a broken table fails in a second, not a minute.
            policies = PolicyStore(settings.policy_table)
            active = engine if engine is not None else _checked_start(settings)
            policy_share = 0.0 if getattr(active, "cpu", True) else settings.gpu_memory_utilization
            loaded = (
                verifiers
                if verifiers is not None
                else load_configured_verifiers(
                    active, settings.verifiers, policy_gpu_share=policy_share
                )
            )
            policies.validate_with(policy_check(loaded, settings.max_tts_n))
        except (VerifierError, PolicyError) as exc:
            logger.error("cannot start: %s", exc)
            raise
        metrics.build.info(
            {
                "version": ponder_version(),
                "engine_version": _engine_version(active),
                "model": active.model_name,
            }
        )
        app.state.serving = Serving(active, loaded, settings, metrics, policies)
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
                shutdown = getattr(active, "shutdown", None)
                if shutdown is not None:
                    shutdown()

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
