import json
import logging
import os
from pathlib import Path

import pytest

from ponder.server.policies import PolicyStore, policy_check
from ponder.strategies.policy import PolicyError

TABLE = {
    "name": "first",
    "bins": [
        {"name": "all", "max_difficulty": 1.0, "options": [{"tts": {"strategy": "none"}}]},
    ],
}


def write(path: Path, table: dict, mtime_ns: int) -> None:
    path.write_text(json.dumps(table))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_store_reloads_a_changed_file_and_keeps_the_last_good_table(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.json"
    write(path, TABLE, 1_000_000_000)
    store = PolicyStore(path)
    assert store.current().name == "first"
    write(path, {**TABLE, "name": "second"}, 2_000_000_000)
    assert store.current().name == "second"
    with caplog.at_level(logging.ERROR):
        path.write_text("{ broken")
        os.utime(path, ns=(3_000_000_000, 3_000_000_000))
        assert store.current().name == "second"
    assert "keeping policy table 'second'" in caplog.text
    path.unlink()
    assert store.current().name == "second"


def test_a_named_table_must_fit_the_server(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    wide = {
        "bins": [
            {
                "name": "all",
                "max_difficulty": 1.0,
                "options": [{"tts": {"strategy": "best_of_n", "n": 32, "verifier": "orm"}}],
            }
        ]
    }
    write(path, wide, 1)
    store = PolicyStore(path)
    with pytest.raises(PolicyError, match="not loaded: orm"):
        store.validate_with(policy_check({}, max_tts_n=64))
    with pytest.raises(PolicyError, match="explores 32 candidates; the server allows 16"):
        store.validate_with(policy_check({"orm": object()}, max_tts_n=16))  # type: ignore[dict-item]


def test_a_missing_table_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        PolicyStore(tmp_path / "absent.json")


def test_the_default_table_only_warns_when_it_does_not_fit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = PolicyStore(None)
    with caplog.at_level(logging.WARNING):
        store.validate_with(policy_check({}, max_tts_n=2))
    assert "compute_optimal requests will be refused" in caplog.text
