"""`ponder ask --trace`: the search a response's `tts` block describes, as a tree of labels.

Step-level searches send every node (`tts.tree`, parents before children); other strategies send
their candidates (`tts.trace`), operations (`tts.graph`) or refinement history (`tts.history`).
Each becomes the same small tree of text labels, which the plain and the rich displays draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .models import TTSBlock

__all__ = ["Branch", "plain_lines", "search_tree"]

_STEP_CHARS = 72
# The notes a search algorithm attaches to a node, shown after its score when present.
_NOTES = ("kept", "pruned", "visits", "value", "visit")


@dataclass
class Branch:
    label: str
    children: list[Branch] = field(default_factory=list)


def _short(text: Any, limit: int = _STEP_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _score(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _node_label(node: dict[str, Any]) -> str:
    if node.get("parent") is None and not node.get("step"):
        return f"#{node.get('id')} the question"
    notes = []
    for key in _NOTES:
        value = node.get(key)
        if value is True:
            notes.append(key)
        elif value not in (None, False):
            notes.append(f"{key} {_score(value) if isinstance(value, float) else value}")
    done = " ✓" if node.get("terminal") else ""
    extra = f" [{', '.join(notes)}]" if notes else ""
    return f"#{node.get('id')} score {_score(node.get('score'))}{extra}{done}: " + _short(
        node.get("step", "")
    )


def _from_nodes(nodes: list[dict[str, Any]]) -> Branch:
    root = Branch(f"search tree ({len(nodes)} nodes)")
    branches: dict[Any, Branch] = {}
    for node in nodes:  # parents come before their children
        branch = Branch(_node_label(node))
        branches[node.get("id")] = branch
        branches.get(node.get("parent"), root).children.append(branch)
    return root


def search_tree(tts: TTSBlock) -> Branch:
    """The search as a tree: nodes, else candidates, else operations or history."""
    if tts.tree:
        return _from_nodes(tts.tree)
    if tts.trace:
        root = Branch(f"candidates ({len(tts.trace)})")
        for c in tts.trace:
            chosen = " ← chosen" if c.index == tts.chosen_index else ""
            answer = f" answer {c.answer!r}" if c.answer is not None else ""
            root.children.append(
                Branch(f"#{c.index} score {_score(c.score)}{answer}{chosen}: {_short(c.text)}")
            )
        return root
    entries = tts.graph or tts.history or []
    root = Branch("graph of operations" if tts.graph else "refinement history")
    root.children = [Branch(_short(json.dumps(e, default=str), 110)) for e in entries]
    if not entries:
        root.label = "no trace: the strategy returned none"
    return root


def plain_lines(branch: Branch, prefix: str = "") -> list[str]:
    """The tree drawn with box characters, one line per branch."""
    lines = [branch.label] if not prefix else []
    for i, child in enumerate(branch.children):
        last = i == len(branch.children) - 1
        lines.append(prefix + ("└─ " if last else "├─ ") + child.label)
        lines.extend(plain_lines(child, prefix + ("   " if last else "│  ")))
    return lines
