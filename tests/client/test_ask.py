"""`ponder ask` in process: flags to typed options, the plain display's answer, summary, progress
and search tree, on the app (scripted engine) and on a scripted stream with progress events."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import httpx
import pytest
import tomllib
from ponder_client import MCTS, CustomStrategy, Ponder, PrmBeamSearch
from ponder_client.cli import UsageError, add_commands, ask, ask_with, parse_ask, strategy_options
from ponder_client.display import PlainDisplay, RichDisplay
from starlette.testclient import TestClient

from tests.client.conftest import BASE, app, ponder_on
from tests.client.test_transport import PROGRESS, REPLY

ROOT = Path(__file__).resolve().parents[2]


def test_flags_become_the_strategys_typed_options() -> None:
    args = parse_ask(["17 * 23?", "--strategy", "prm_beam_search", "--verifier", "arithmetic"])
    args.n = 8
    assert strategy_options(args) == PrmBeamSearch(n=8, verifier="arithmetic")
    mcts = parse_ask(["q", "--strategy", "mcts", "--param", "simulations=4", "--trace"])
    assert strategy_options(mcts) == MCTS(simulations=4, return_trace=True)
    with pytest.raises(UsageError, match="has no parameter 'n'"):
        strategy_options(parse_ask(["q", "--strategy", "mcts", "-n", "4"]))
    with pytest.raises(UsageError, match="n: Input should be greater than or equal to 1"):
        strategy_options(parse_ask(["q", "--strategy", "best_of_n", "-n", "0"]))
    other = strategy_options(parse_ask(["q", "--strategy", "future", "--param", "k=3"]))
    assert other == CustomStrategy(strategy="future", k=3)


def test_ask_joins_the_ponder_command_through_the_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PONDER_BASE_URL", raising=False)
    declared = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    entry = declared["project"]["entry-points"]["ponder.commands"]["ask"]
    assert entry == "ponder_client.cli:add_commands"
    # What `ponder`'s parser does with it (server/cli.py), on a command set of its own.
    parser = argparse.ArgumentParser(prog="ponder")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ask", "What is 17 * 23?", "--strategy", "best_of_n", "-n", "3"])
    assert args.handler is ask and args.question == "What is 17 * 23?" and args.n == 3
    assert args.server == "http://127.0.0.1:8000"


def run_plain(ponder: Ponder, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = ask_with(ponder, parse_ask(argv), PlainDisplay(out, err))
    return status, out.getvalue(), err.getvalue()


def test_plain_ask_streams_the_answer_then_the_summary_and_the_tree() -> None:
    with TestClient(app()) as http:
        ponder = ponder_on(http)
        argv = ["What is 2 + 3?", "--strategy", "prm_beam_search", "-n", "2"]
        status, out, _ = run_plain(ponder, [*argv, "--param", "beam_width=2", "--trace"])
        assert status == 0
        answer, _, summary = out.partition("\n\nstrategy:")
        assert answer.startswith("2 + 3 = 5.")  # the search's steps
        assert "prm_beam_search" in summary and "candidates:" in summary
        assert "verifier calls:" in summary and "chosen score:" in summary
        assert "search tree (" in summary and "└─ #" in summary
        status, _, err = run_plain(ponder, ["q", "--strategy", "best_of_n", "--verifier", "nope"])
        assert status == 1 and "error: HTTP 400" in err and "tts.verifier" in err


def test_progress_events_are_shown_before_the_answer() -> None:
    answer = {**PROGRESS, "choices": [{"index": 0, "delta": {"content": "391"}}]}
    del answer["tts_progress"]
    final = {**answer, "choices": [], "usage": REPLY["usage"], "tts": REPLY["tts"]}
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in (PROGRESS, answer, final))
    stream = httpx.Response(200, content=(body + "data: [DONE]\n\n").encode())
    http = httpx.Client(transport=httpx.MockTransport(lambda request: stream))
    status, out, err = run_plain(Ponder(BASE, model="m", http_client=http), ["17 * 23?"])
    assert status == 0 and out.startswith("391\n")
    assert "progress: expand, step 2/8, 8 alive, best 0.900, 120 tokens, 1.5 s" in err
    assert "tokens generated: 3" in out and "tokens returned:  3" in out


def test_the_rich_display_draws_the_tree() -> None:
    from rich.console import Console

    with TestClient(app()) as http:
        display = RichDisplay()
        display.console = Console(file=io.StringIO(), width=120)
        argv = ["What is 2 + 3?", "--strategy", "mcts", "--param", "simulations=2", "--trace"]
        assert ask_with(ponder_on(http), parse_ask(argv), display) == 0
        shown = display.console.file.getvalue()  # type: ignore[attr-defined]
        assert "2 + 3 = 5." in shown and "search tree (" in shown and "visits" in shown
