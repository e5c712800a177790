"""What `ponder ask` shows: progress while the server searches, the answer, a summary, the tree.

`PlainDisplay` writes lines (for pipes, logs and tests); `RichDisplay` draws a live progress bar
and tables with `rich` (the `cli` extra). Both take the same calls, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from .models import TTSBlock, TTSProgress, Usage
from .trace_view import Branch, plain_lines, search_tree

__all__ = ["AskSummary", "PlainDisplay", "RichDisplay", "progress_text"]


@dataclass
class AskSummary:
    """The last lines of `ponder ask`: what the search cost and what it chose."""

    strategy: str
    candidates: int
    generated_tokens: int
    returned_tokens: int
    verifier_calls: int
    seconds: float
    chosen_score: float | None
    budget_exhausted: str | None

    @classmethod
    def of(cls, tts: TTSBlock, usage: Usage | None, seconds: float) -> AskSummary:
        return cls(
            strategy=tts.strategy,
            candidates=tts.candidates,
            generated_tokens=usage.completion_tokens if usage else tts.generated_tokens,
            returned_tokens=usage.returned_tokens if usage else 0,
            verifier_calls=tts.verifier_calls,
            seconds=seconds,
            chosen_score=tts.chosen_score,
            budget_exhausted=str(tts.budget_exhausted) if tts.budget_exhausted else None,
        )

    def rows(self) -> list[tuple[str, str]]:
        score = f"{self.chosen_score:.3f}" if self.chosen_score is not None else "-"
        rows = [
            ("strategy", self.strategy),
            ("candidates", str(self.candidates)),
            ("tokens generated", str(self.generated_tokens)),
            ("tokens returned", str(self.returned_tokens)),
            ("verifier calls", str(self.verifier_calls)),
            ("time", f"{self.seconds:.1f} s"),
            ("chosen score", score),
        ]
        if self.budget_exhausted:
            rows.append(("budget exhausted", self.budget_exhausted))
        return rows


def progress_text(p: TTSProgress) -> str:
    """One line for a progress event: `expand, step 2/8, 8 alive, best 0.912, 312/4096 tokens`."""
    parts = [p.phase, f"step {p.step}" + (f"/{p.max_steps}" if p.max_steps else "")]
    parts.append(f"{p.candidates_alive} alive")
    if p.best_score is not None:
        parts.append(f"best {p.best_score:.3f}")
    budget = f"/{p.token_budget}" if p.token_budget else ""
    parts.append(f"{p.completion_tokens}{budget} tokens")
    parts.append(f"{p.elapsed_s:.1f} s")
    return ", ".join(parts)


class PlainDisplay:
    """Lines of text: progress on `err`, the answer, summary and tree on `out`."""

    def __init__(self, out: IO[str], err: IO[str]) -> None:
        self.out, self.err = out, err
        self._answering = False

    def start(self, strategy: str) -> None:
        self.err.write(f"asking with {strategy}...\n")
        self.err.flush()

    def progress(self, p: TTSProgress) -> None:
        self.err.write(f"progress: {progress_text(p)}\n")
        self.err.flush()

    def answer(self, text: str) -> None:
        self._answering = True
        self.out.write(text)
        self.out.flush()

    def summary(self, summary: AskSummary) -> None:
        if self._answering:
            self.out.write("\n")
        self.out.write("\n")
        for name, value in summary.rows():
            self.out.write(f"{name + ':':<18}{value}\n")

    def trace(self, tts: TTSBlock) -> None:
        self.out.write("\n" + "\n".join(plain_lines(search_tree(tts))) + "\n")

    def error(self, message: str) -> None:
        if self._answering:
            self.out.write("\n")
        self.err.write(f"error: {message}\n")

    def close(self) -> None:
        self.out.flush()


class RichDisplay:
    """A live progress bar while the server searches, then the answer, a table and a tree."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console()
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: Any = None

    def start(self, strategy: str) -> None:
        self._bar.start()
        self._task = self._bar.add_task(strategy, total=None, detail="searching")

    def progress(self, p: TTSProgress) -> None:
        self._bar.update(
            self._task,
            description=f"{p.strategy} · {p.phase}",
            completed=p.step,
            total=p.max_steps,
            detail=progress_text(p),
        )

    def answer(self, text: str) -> None:
        self._stop_bar()
        self.console.print(text, end="", markup=False, highlight=False)

    def summary(self, summary: AskSummary) -> None:
        from rich.table import Table

        self._stop_bar()
        table = Table(show_header=False, box=None, padding=(0, 2))
        for name, value in summary.rows():
            table.add_row(f"[dim]{name}[/dim]", value)
        self.console.print("\n")
        self.console.print(table)

    def trace(self, tts: TTSBlock) -> None:
        from rich.markup import escape
        from rich.tree import Tree

        def grow(tree: Tree, branch: Branch) -> None:
            for child in branch.children:
                grow(tree.add(escape(child.label)), child)

        root = search_tree(tts)
        tree = Tree(escape(root.label))
        grow(tree, root)
        self.console.print(tree)

    def error(self, message: str) -> None:
        self._stop_bar()
        from rich.markup import escape

        self.console.print(f"\n[red]error:[/red] {escape(message)}", highlight=False)

    def close(self) -> None:
        self._stop_bar()

    def _stop_bar(self) -> None:
        if self._bar.live.is_started:
            self._bar.stop()
