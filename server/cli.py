"""The `ponder` command: `serve`, `models prepare`, and the commands other packages add (`eval`,
`calibrate`, `ask`).

`serve`'s flags are generated from `Settings`, so every flag has a `PONDER_` variable and the same
one-line help; a flag given on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .settings import Settings

__all__ = ["main"]


def _flag_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _flag_type(args[0])
    return annotation


def _key_values(text: str) -> dict[str, str]:
    """`name=prm,family=qwen_prm` -> {"name": "prm", "family": "qwen_prm"}."""
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected key=value pairs, got {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = _flag_type(field.annotation)
        help_text = f"{field.description} [env PONDER_{name.upper()}]"
        if typing.get_origin(field.annotation) is list:
            # One flag per item, singular: --verifier name=...,family=... --verifier ...
            (item,) = typing.get_args(field.annotation)
            parser.add_argument(
                flag.rstrip("s"),
                dest=name,
                action="append",
                type=str if item is str else _key_values,
                help=help_text,
            )
        elif kind is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            choices = typing.get_args(field.annotation)
            parser.add_argument(
                flag,
                dest=name,
                type=kind if kind in (int, float, str, Path) else str,
                default=None,
                choices=choices if typing.get_origin(field.annotation) is typing.Literal else None,
                help=help_text,
            )


def _settings(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None}
    return Settings(**given)


def _serve(args: argparse.Namespace) -> int:
    from .app import create_app
    from .drain import DrainingServer

    settings = _settings(args)
    logging.getLogger("ponder").setLevel(settings.log_level.upper())
    app = create_app(settings)
    server = DrainingServer(
        app,
        settings.drain_grace_s,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )
    server.run()
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from .model_store import ModelPreparationError, prepare_default_model

    try:
        folder = prepare_default_model(args.cache_dir, force=args.force)
    except ModelPreparationError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 1
    sys.stdout.write(f"{folder}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ponder", description="Test-time scaling over vLLM.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Serve the OpenAI API on a vLLM engine.")
    _add_settings_flags(serve)
    serve.set_defaults(handler=_serve)
    models = commands.add_parser("models", help="Manage the embedded model.")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    prepare = model_commands.add_parser(
        "prepare", help="Convert the embedded SmolLM2-135M-Instruct into a folder vLLM loads."
    )
    prepare.add_argument("--cache-dir", type=Path, default=None, help="Default: ~/.cache/ponder.")
    prepare.add_argument("--force", action="store_true", help="Prepare again even if present.")
    prepare.set_defaults(handler=_prepare)
    # Commands of other distributions and packages (`ponder eval`, `ponder calibrate`) plug in
    # through an entry point, so the server never imports the tools that stand above it.
    for plugin in entry_points(group="ponder.commands"):
        plugin.load()(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per HTTP request would bury `ponder eval`'s progress bar.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
