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

Limits. Zero and negative weights are passed on, and the embedder decides what they mean (see
``prompt_embeddings``). But a text's weight after nesting (the product of its groups' multipliers)
must lie within ``-MAX_WEIGHT`` to ``MAX_WEIGHT``, and groups may nest at most ``MAX_NESTING``
deep; beyond either, RiffusionError. Far larger weights do not steer any harder: they throw the
embedding so far off that the model answers with noise, or with NaN that renders as a black image.
Text in groups that never close is not nested (its brackets are literal), and limits only apply to
text, so ``(:50)`` is as harmless as it is empty.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from riffusion.errors import RiffusionError

#: Multiplier of ``(text)``; ``[text]`` uses its reciprocal.
EMPHASIS = 1.1
#: Largest magnitude of a text's weight after nesting; 2 is already a strong emphasis.
MAX_WEIGHT = 10.0
#: Deepest nesting of groups: ten ``(`` make 2.6, sixteen 4.6.
MAX_NESTING = 16

_ESCAPABLE = frozenset("()[]:\\")
_CLOSER = {"(": ")", "[": "]"}
# ":<number>)" closing a round group. Matched at the colon so that an escaped colon (already
# consumed as text) can never start a weight.
_EXPLICIT_WEIGHT = re.compile(r":\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)")


@dataclass(frozen=True)
class _Run:
    """Text with its weight and the number of groups around it."""

    text: str
    weight: float
    depth: int


@dataclass
class _Opening:
    """An opening bracket; a group once its closer turns up, with that closer's multiplier."""

    bracket: str
    factor: float | None = None


class _Closing:
    """Where the innermost group ends."""


_CLOSING = _Closing()


def parse_weighted_prompt(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(substring, weight)`` runs with the brackets removed.

    Adjacent runs of equal weight are merged and empty runs dropped, so a prompt without weight
    syntax comes back as ``[(text, 1.0)]`` (or ``[]`` when it is empty). Time and memory are
    linear in the length of the prompt, however its brackets nest.

    Raises:
        RiffusionError: a text's weight is beyond MAX_WEIGHT, or it is nested more than
            MAX_NESTING groups deep.
    """
    runs = _runs(_tokens(text))
    _check_limits(runs)
    merged: list[tuple[str, float]] = []
    for weight, same in itertools.groupby(runs, key=lambda run: run.weight):
        merged.append(("".join(run.text for run in same), weight))
    return merged


def _tokens(text: str) -> list[str | _Opening | _Closing]:
    """The prompt as text, openings and closings, pairing brackets as the module docstring says.

    Openings that never pair up stay unpaired (factor None): their brackets are text.
    """
    tokens: list[str | _Opening | _Closing] = []
    open_groups: list[_Opening] = []  # innermost last
    i = 0
    while i < len(text):
        char = text[i]
        top = open_groups[-1].bracket if open_groups else ""
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            tokens.append(text[i + 1])
            i += 2
            continue
        if char in _CLOSER:
            open_groups.append(_Opening(char))
            tokens.append(open_groups[-1])
        elif char == _CLOSER.get(top):
            open_groups.pop().factor = EMPHASIS if char == ")" else 1 / EMPHASIS
            tokens.append(_CLOSING)
        elif char == ":" and top == "(" and (match := _EXPLICIT_WEIGHT.match(text, i)):
            open_groups.pop().factor = float(match.group(1))
            tokens.append(_CLOSING)
            i = match.end()
            continue
        else:
            tokens.append(char)
        i += 1
    return tokens


def _runs(tokens: list[str | _Opening | _Closing]) -> list[_Run]:
    """The non-empty runs of text between brackets, with the product of their groups'
    multipliers and the number of groups around them."""
    runs: list[_Run] = []
    # weights[d]: the multiplier of text within d groups, outermost first.
    weights = [1.0]
    pieces: list[str] = []

    def end_run() -> None:
        if pieces:
            runs.append(_Run("".join(pieces), weights[-1], len(weights) - 1))
            pieces.clear()

    for token in tokens:
        if isinstance(token, str):
            pieces.append(token)
        elif isinstance(token, _Closing):
            end_run()
            weights.pop()
        elif token.factor is None:
            pieces.append(token.bracket)
        else:
            end_run()
            weights.append(weights[-1] * token.factor)
    end_run()
    return runs


def _check_limits(runs: list[_Run]) -> None:
    """RiffusionError for the first run nested too deep or weighted too heavily."""
    for run in runs:
        if run.depth > MAX_NESTING:
            raise RiffusionError(
                f"brackets nest {run.depth} deep around {_shown(run.text)}; at most "
                f"{MAX_NESTING} levels are allowed"
            )
        # Written so that NaN (inf times 0) fails too.
        if not abs(run.weight) <= MAX_WEIGHT:
            raise RiffusionError(
                f"weight {run.weight:g} of {_shown(run.text)} is out of range: weights, "
                f"nested groups multiplied out, must be between {-MAX_WEIGHT:g} and "
                f"{MAX_WEIGHT:g}"
            )


def _shown(text: str) -> str:
    """text quoted for a message, shortened to 30 characters."""
    return repr(text if len(text) <= 30 else text[:27] + "...")
