"""`ponder ask`: one question to a running server, for a person at a terminal.

It streams the answer, shows the search's progress while the server runs it, and ends with what
it cost. The command joins the server's `ponder` command through the `ponder.commands` entry
point (this distribution declares it), so the server never imports the client; without the
server installed, `ponder-client ask` (or `python -m ponder_client ask`) runs the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ._requests import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, Message
from .client import Ponder
from .display import AskSummary, PlainDisplay, RichDisplay
from .errors import PonderError
from .models import ChatCompletionChunk, ProgressChunk
from .options import STRATEGY_OPTIONS, CustomStrategy, StrategyOptions

__all__ = ["UsageError", "add_commands", "ask", "ask_with", "main", "parse_ask", "strategy_options"]


class UsageError(ValueError):
    """A flag the chosen strategy cannot take."""


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)  # numbers, booleans, objects
    except ValueError:
        parsed = value
    return key.strip(), parsed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="The question, as the user's message.")
    parser.add_argument(
        "--strategy", default="none", help="A strategy the server lists (default: none)."
    )
    parser.add_argument("--verifier", help="The strategy's verifier, e.g. arithmetic.")
    parser.add_argument("-n", "--n", dest="n", type=int, help="The strategy's n.")
    parser.add_argument(
        "--param",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="Any other strategy parameter (VALUE read as JSON when it parses), repeatable.",
    )
    parser.add_argument("--max-tokens", type=int, help="Most tokens in the answer.")
    parser.add_argument("--temperature", type=float, help="Sampling temperature.")
    parser.add_argument("--system", help="A system message.")
    parser.add_argument("--model", help="Model id (default: the one the server serves).")
    parser.add_argument(
        "--server",
        default=os.environ.get(BASE_URL_ENV, DEFAULT_BASE_URL),
        help=f"Ponder's base URL [env {BASE_URL_ENV}; default {DEFAULT_BASE_URL}].",
    )
    parser.add_argument("--api-key", default=None, help=f"[env {API_KEY_ENV}]")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds (default 600).")
    parser.add_argument(
        "--trace", action="store_true", help="Ask for the trace and draw the search tree."
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="Plain lines, no live display (the default when stdout is not a terminal).",
    )


def add_commands(commands: Any) -> None:
    """Adds `ask` to a `ponder` subcommand set (the `ponder.commands` entry point)."""
    parser = commands.add_parser(
        "ask", help="Ask a running Ponder server a question and watch it search."
    )
    add_arguments(parser)
    parser.set_defaults(handler=ask)


def strategy_options(args: argparse.Namespace) -> StrategyOptions:
    """The typed `tts` options the flags describe; a flag the strategy lacks is a UsageError."""
    cls = STRATEGY_OPTIONS.get(args.strategy)
    params: dict[str, Any] = dict(args.param)
    for flag, name, value in (("-n", "n", args.n), ("--verifier", "verifier", args.verifier)):
        if value is None:
            continue
        if cls is not None and name not in cls.model_fields:
            raise UsageError(f"{flag}: strategy {args.strategy} has no parameter {name!r}")
        params[name] = value
    if args.trace:
        params["return_trace"] = True
    try:
        if cls is None:
            return CustomStrategy(strategy=args.strategy, **params)
        return cls(**params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise UsageError(f"strategy {args.strategy}: {problems}") from None


def ask(args: argparse.Namespace) -> int:
    """`ponder ask`: exit status 0 on an answer, 1 on a server error, 2 on bad flags."""
    plain = args.plain or not sys.stdout.isatty()
    display: PlainDisplay | RichDisplay
    try:
        display = PlainDisplay(sys.stdout, sys.stderr) if plain else RichDisplay()
    except ImportError:  # rich is the `cli` extra
        display = PlainDisplay(sys.stdout, sys.stderr)
    with Ponder(args.server, api_key=args.api_key, model=args.model, timeout=args.timeout) as p:
        return ask_with(p, args, display)


def ask_with(ponder: Ponder, args: argparse.Namespace, display: PlainDisplay | RichDisplay) -> int:
    """`ask` on a given client and display."""
    try:
        options = strategy_options(args)
    except UsageError as exc:
        display.error(str(exc))
        return 2
    messages: list[Message] = [{"role": "user", "content": args.question}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    fields = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    started = time.monotonic()
    last: ChatCompletionChunk | None = None
    display.start(options.strategy)
    try:
        for chunk in ponder.stream_chat(messages, strategy=options, **fields):
            if isinstance(chunk, ProgressChunk):
                display.progress(chunk.tts_progress)
                continue
            if chunk.text:
                display.answer(chunk.text)
            if chunk.tts is not None:
                last = chunk
    except PonderError as exc:
        display.error(str(exc))
        display.close()
        return 1
    if last is not None and last.tts is not None:
        display.summary(AskSummary.of(last.tts, last.usage, time.monotonic() - started))
        if args.trace:
            display.trace(last.tts)
    display.close()
    return 0


def parse_ask(argv: Sequence[str]) -> argparse.Namespace:
    """`ask`'s flags parsed alone (for callers that run it in process)."""
    parser = argparse.ArgumentParser(prog="ponder ask")
    add_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`ponder-client`: the client's commands, for an install without the server."""
    parser = argparse.ArgumentParser(prog="ponder-client", description="Ponder's client.")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result
