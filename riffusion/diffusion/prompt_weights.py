r"""Parse attention weights out of prompt text, e.g. ``"lofi (piano:1.3) with [vinyl crackle]"``.

Grammar (the syntax popularised by the AUTOMATIC1111 web UI):

- ``(text)`` multiplies the weight of ``text`` by 1.1, ``[text]`` divides it by 1.1.
- ``(text:1.3)`` sets the multiplier of the group to 1.3 instead of 1.1. The number may be signed
  and have surrounding spaces: ``( text : -0.5 )``. Only round groups take a number; inside
  ``[...]`` a colon is plain text.
- Groups nest and their multipliers multiply: ``((text))`` is 1.21, ``((a), b:0.5)`` gives ``a``
  0.55 and ``b`` 0.5.
- A backslash makes the next ``( ) [ ] : \`` literal: ``\(1990\)`` is the text ``(1990)``, and
  ``(ratio 16\:9)`` is ``ratio 16:9`` at 1.1 rather than ``ratio 16`` at 9. A backslash before any
  other character is itself literal.
- Malformed brackets never raise and never drop text: a closing bracket that does not match the
  innermost open one, and an opening bracket that is never closed, stay in the text as literal
  characters with no weight effect. ``"a (b"`` is ``[("a (b", 1.0)]``.

Weights are not clamped here: ``(x:0)`` and negative weights are passed on, and the embedder
decides what they mean (see ``prompt_embeddings``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Multiplier of ``(text)``; ``[text]`` uses its reciprocal.
EMPHASIS = 1.1

_ESCAPABLE = frozenset("()[]:\\")
_CLOSER = {"(": ")", "[": "]"}
# ":<number>)" closing a round group. Matched at the colon so that an escaped colon (already
# consumed as text) can never start a weight.
_EXPLICIT_WEIGHT = re.compile(r":\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)")


@dataclass
class _Group:
    """An open bracket and the weighted runs parsed since, weights relative to the group."""

    opener: str
    runs: list[tuple[str, float]] = field(default_factory=list)

    def add_text(self, text: str) -> None:
        self.runs.append((text, 1.0))

    def add_runs(self, runs: list[tuple[str, float]], factor: float) -> None:
        self.runs.extend((text, weight * factor) for text, weight in runs)


def parse_weighted_prompt(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(substring, weight)`` runs with the brackets removed.

    Adjacent runs of equal weight are merged and empty runs dropped, so a prompt without weight
    syntax comes back as ``[(text, 1.0)]`` (or ``[]`` when it is empty).
    """
    stack = [_Group(opener="")]
    i = 0
    while i < len(text):
        char = text[i]
        top = stack[-1]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            top.add_text(text[i + 1])
            i += 2
            continue
        if char in _CLOSER:
            stack.append(_Group(opener=char))
        elif char == _CLOSER.get(top.opener):
            stack.pop()
            factor = EMPHASIS if char == ")" else 1 / EMPHASIS
            stack[-1].add_runs(top.runs, factor)
        elif char == ":" and top.opener == "(" and (match := _EXPLICIT_WEIGHT.match(text, i)):
            stack.pop()
            stack[-1].add_runs(top.runs, float(match.group(1)))
            i = match.end()
            continue
        else:
            top.add_text(char)
        i += 1

    # Unclosed groups: their bracket becomes text and their contents keep only inner weights.
    while len(stack) > 1:
        group = stack.pop()
        stack[-1].add_text(group.opener)
        stack[-1].add_runs(group.runs, 1.0)
    return _merge(stack[0].runs)


def _merge(runs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Concatenate adjacent runs with equal weights and drop empty ones."""
    merged: list[tuple[str, float]] = []
    for text, weight in runs:
        if not text:
            continue
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return merged
