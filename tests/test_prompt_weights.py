"""Tests for the prompt weight parser."""

import pytest

from riffusion.diffusion.inputs import PromptInput
from riffusion.diffusion.prompt_weights import (
    EMPHASIS,
    MAX_NESTING,
    MAX_WEIGHT,
    parse_weighted_prompt,
)
from riffusion.errors import RiffusionError

UP = EMPHASIS
DOWN = 1 / EMPHASIS


def approx_runs(runs: list[tuple[str, float]]) -> list[tuple[str, object]]:
    """Runs with pytest.approx weights, since nested weights are float products."""
    return [(text, pytest.approx(weight)) for text, weight in runs]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("", []),
        ("jazzy lofi beat", [("jazzy lofi beat", 1.0)]),
        ("a (b) c", [("a ", 1.0), ("b", UP), (" c", 1.0)]),
        ("((b))", [("b", UP * UP)]),
        ("(((b)))", [("b", UP**3)]),
        ("a [b] c", [("a ", 1.0), ("b", DOWN), (" c", 1.0)]),
        ("[[b]]", [("b", DOWN * DOWN)]),
        ("([b])", [("b", 1.0)]),
        ("a (b:1.3) c", [("a ", 1.0), ("b", 1.3), (" c", 1.0)]),
        ("( b : 1.3 )", [(" b ", 1.3)]),
        ("(b:.5)", [("b", 0.5)]),
        ("(b:2.)", [("b", 2.0)]),
        ("(b:+2)", [("b", 2.0)]),
        ("(a, b:0.5)", [("a, b", 0.5)]),
        ("((a), b:0.5)", [("a", UP * 0.5), (", b", 0.5)]),
        ("(a (b:2) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
        ("[a (b:1.5)]", [("a ", DOWN), ("b", 1.5 * DOWN)]),
        ("(b:0)", [("b", 0.0)]),
        ("(b:-1)", [("b", -1.0)]),
        ("(a)(b)", [("ab", UP)]),
        ("(a) (b)", [("a", UP), (" ", 1.0), ("b", UP)]),
        ("(:1.3)", []),
        ("a () [] b", [("a   b", 1.0)]),
    ],
)
def test_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weighted_prompt(prompt) == approx_runs(expected)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (r"\(1990\)", [("(1990)", 1.0)]),
        (r"\[x\]", [("[x]", 1.0)]),
        (r"(a \(b\))", [("a (b)", UP)]),
        (r"(ratio 16\:9)", [("ratio 16:9", UP)]),
        (r"(x\:1.3)", [("x:1.3", UP)]),
        (r"back\\(slash)", [("back\\", 1.0), ("slash", UP)]),
        (r"C:\path\ (x)", [("C:\\path\\ ", 1.0), ("x", UP)]),
        ("trailing\\", [("trailing\\", 1.0)]),
    ],
)
def test_escapes(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weighted_prompt(prompt) == approx_runs(expected)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a (b", [("a (b", 1.0)]),
        ("a b)", [("a b)", 1.0)]),
        ("a [b", [("a [b", 1.0)]),
        ("a b]", [("a b]", 1.0)]),
        ("((b)", [("(", 1.0), ("b", UP)]),
        ("(b))", [("b", UP), (")", 1.0)]),
        ("(a [b) c]", [("(a ", 1.0), ("b) c", DOWN)]),
        ("(a]", [("(a]", 1.0)]),
        ("(b:1.3", [("(b:1.3", 1.0)]),
        ("a (b (c:1.3)", [("a (b ", 1.0), ("c", 1.3)]),
        ("16:9 ratio)", [("16:9 ratio)", 1.0)]),
        ("[b:0.5]", [("b:0.5", DOWN)]),
        ("(b:1.2:1.3)", [("b:1.2", 1.3)]),
        ("(b:x)", [("b:x", UP)]),
        (")(", [(")(", 1.0)]),
    ],
)
def test_malformed_degrades_to_literal_text(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_weighted_prompt(prompt) == approx_runs(expected)


def test_mixed_syntax() -> None:
    """Balanced groups, an escape, a stray closer and an unclosed opener in one prompt."""
    prompt = "a ((b:1.2) [c] d\\( e) f] :0.5) (g"
    assert parse_weighted_prompt(prompt) == approx_runs(
        [
            ("a ", 1.0),
            ("b", 1.2 * UP),
            (" ", UP),
            ("c", DOWN * UP),
            (" d( e", UP),
            (" f] :0.5) (g", 1.0),
        ]
    )


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("(a:10000000000000000)", r"weight 1e\+16 of 'a' is out of range: .* between -10 and 10"),
        ("(a:" + "9" * 400 + ")", "weight inf of 'a'"),
        ("((a:0):" + "9" * 400 + ")", "weight nan of 'a'"),
        ("(a:-11)", "weight -11 of 'a'"),
        ("(((a:9)))", r"weight 10\.89 of 'a'"),
        ("(" * 499 + "a" + ")" * 499, "brackets nest 499 deep around 'a'; at most 16 levels"),
        ("[" * 17 + "a" + "]" * 17, "brackets nest 17 deep"),
        ("x (" + "long " * 20 + ":20)", r"of 'long long long long long lo\.\.\.'"),
    ],
)
def test_weights_and_nesting_beyond_the_limits_are_refused(prompt: str, message: str) -> None:
    """Such weights made NaN embeddings: a black spectrogram and full-scale noise."""
    with pytest.raises(RiffusionError, match=message):
        parse_weighted_prompt(prompt)


@pytest.mark.parametrize(
    "prompt",
    [
        "(a:10)",
        "(a:-10)",
        "(" * MAX_NESTING + "a" + ")" * MAX_NESTING,
        "(" * 499,  # never closed: literal text, not nesting
        "(:50)",  # a weight on no text
        "[" * MAX_NESTING + "a" + "]" * MAX_NESTING,
    ],
)
def test_weights_and_nesting_up_to_the_limits_are_accepted(prompt: str) -> None:
    assert all(abs(weight) <= MAX_WEIGHT for _, weight in parse_weighted_prompt(prompt))


def test_prompt_inputs_check_their_weights() -> None:
    """So the CLI refuses them before it loads the model, and the server answers 400."""
    with pytest.raises(RiffusionError, match=r"^prompt: weight 1e\+16 of 'a'"):
        PromptInput("(a:10000000000000000)", seed=1)
    with pytest.raises(RiffusionError, match=r"^negative prompt: brackets nest 20 deep"):
        PromptInput("jazz", seed=1, negative_prompt="(" * 20 + "b" + ")" * 20)
