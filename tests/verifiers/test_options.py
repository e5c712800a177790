"""Verifier options are the constructor's typed keyword arguments: anything else stops start-up."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from ponder.server import engines
from ponder.server.app import create_app
from ponder.server.settings import Settings, VerifierSpec
from ponder.verifiers.arithmetic import ArithmeticVerifier
from ponder.verifiers.base import VerifierError
from ponder.verifiers.loading import check_verifier_specs, load_configured_verifiers
from ponder.verifiers.options import checked_options
from ponder.verifiers.orm import OutcomeRewardModel
from ponder.verifiers.qwen_prm import QwenPRM
from tests.scripted import ScriptedEngine
from tests.server import test_engines


def test_a_misspelt_option_names_the_verifier_and_the_option() -> None:
    with pytest.raises(
        VerifierError,
        match=r"verifier 'prm' \(family qwen_prm\) takes no option 'aggregaton' "
        r"\(its options: aggregation, api_key, backend, device, .*\)",
    ):
        checked_options(QwenPRM, {"name": "prm", "model": "/m", "aggregaton": "min"})


def test_a_wrongly_typed_option_names_the_verifier_and_the_option() -> None:
    with pytest.raises(VerifierError, match=r"verifier 'rm' \(family .*\) option 'max_batch'"):
        checked_options(OutcomeRewardModel, {"name": "rm", "max_batch": "many"})
    with pytest.raises(VerifierError, match=r"verifier 'prm' .* option 'aggregation'"):
        checked_options(QwenPRM, {"name": "prm", "aggregation": "median"})


def test_valid_options_are_coerced_to_their_types() -> None:
    options = checked_options(QwenPRM, {"name": "prm", "max_batch": "4", "aggregation": "last"})
    assert options == {"name": "prm", "max_batch": 4, "aggregation": "last"}


def test_an_option_of_another_family_is_refused_not_dropped() -> None:
    # An outcome reward model has no step aggregation; the arithmetic checker loads no model.
    orm = VerifierSpec(name="rm", family="orm", model="/m", aggregation="min")
    with pytest.raises(VerifierError, match=r"'rm' .* takes no option 'aggregation'"):
        check_verifier_specs([orm])
    arithmetic = VerifierSpec(name="exact", family="arithmetic", max_batch=4)
    with pytest.raises(VerifierError, match=r"'exact' .* takes no option 'max_batch'"):
        load_configured_verifiers(ScriptedEngine(), [arithmetic])
    # The options it does take load it, with them.
    last = VerifierSpec(name="exact", family="arithmetic", aggregation="last")
    loaded = load_configured_verifiers(ScriptedEngine(), [last])["exact"]
    assert isinstance(loaded, ArithmeticVerifier) and loaded.aggregation == "last"


def test_constructors_take_no_options_they_would_drop() -> None:
    options: dict[str, Any] = {"aggregaton": "last"}
    with pytest.raises(TypeError, match="aggregaton"):
        ArithmeticVerifier(**options)


def test_a_misspelt_verifier_option_stops_start_up_before_the_engine_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(engines.ENGINES, "scripted", "tests.server.test_engines:start_scripted")
    test_engines.started.clear()
    spec = {"name": "prm", "family": "qwen_prm", "model": "/models/prm", "agregation": "min"}
    app = create_app(Settings(engine="scripted", verifiers=[spec]))
    with (
        pytest.raises(VerifierError, match=r"'prm' .* takes no option 'agregation'"),
        TestClient(app),
    ):
        pass
    assert test_engines.started == []
