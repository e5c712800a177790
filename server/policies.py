"""The server's compute-optimal policy table, kept current with its file.

Operators fit a table with `ponder calibrate` and point `--policy-table` at it. The file is read
again when it changes (a new calibration, a Kubernetes ConfigMap update), so a new table needs no
restart; a table that fails to load or to fit this server is logged and the previous one kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from ponder.strategies.policy import (
    PolicyError,
    PolicyTable,
    default_policy,
    load_policy,
    option_params,
)
from ponder.verifiers.base import Verifier

from .planning import logprobs_needed

__all__ = ["PolicyStore", "policy_check"]

logger = logging.getLogger(__name__)


def policy_check(
    verifiers: Mapping[str, Verifier], max_tts_n: int, max_logprobs: int | None = None
) -> Callable[[PolicyTable], None]:
    """What a table must satisfy on this server: its verifiers loaded, its widths within caps,
    and (given `max_logprobs`) no option asking for more log-probs than the server serves."""

    def check(table: PolicyTable) -> None:
        missing = sorted(table.verifier_names() - set(verifiers))
        if missing:
            loaded = ", ".join(sorted(verifiers)) or "none"
            raise PolicyError(
                f"policy table {table.name!r} uses verifiers that are not loaded: "
                f"{', '.join(missing)} (loaded: {loaded})"
            )
        widest = max(table.probe.n, *(option_params(o.tts).candidates() for o in table.options()))
        if widest > max_tts_n:
            raise PolicyError(
                f"policy table {table.name!r} explores {widest} candidates; the server allows "
                f"{max_tts_n} (--max-tts-n)"
            )
        if max_logprobs is None:
            return
        for option in table.options():
            for param, wanted in logprobs_needed(option_params(option.tts), verifiers).items():
                if wanted > max_logprobs:
                    raise PolicyError(
                        f"policy table {table.name!r}: option {option.strategy} needs {wanted} "
                        f"log-probs per token ({param}); the server serves {max_logprobs} "
                        "(--max-logprobs)"
                    )

    return check


class PolicyStore:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._check: Callable[[PolicyTable], None] = lambda table: None
        self._stamp: tuple[int, int] | None = None
        self._table = default_policy() if path is None else load_policy(path)
        self._stamp = self._file_stamp()

    def validate_with(self, check: Callable[[PolicyTable], None]) -> None:
        """Check the current table now and every reloaded one later.

        A table the operator named must pass (PolicyError otherwise); the shipped default only
        warns, since a server with tighter caps may never serve `compute_optimal` at all.
        """
        self._check = check
        try:
            check(self._table)
        except PolicyError as exc:
            if self.path is not None:
                raise
            logger.warning("compute_optimal requests will be refused: %s", exc)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def current(self) -> PolicyTable:
        stamp = self._file_stamp()
        if self.path is None or stamp is None or stamp == self._stamp:
            return self._table
        self._stamp = stamp
        try:
            table = load_policy(self.path)
            self._check(table)
        except PolicyError as exc:
            logger.error("keeping policy table %r: %s", self._table.name, exc)
            return self._table
        logger.info("loaded policy table %r from %s", table.name, self.path)
        self._table = table
        return table
