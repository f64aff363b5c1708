"""Helpers of the command line tests: run a command in-process, check how it ended."""

from __future__ import annotations

import re

from click.testing import CliRunner, Result

from riffusion.cli.main import cli


def run(*args: object) -> Result:
    """`riffusion ARGS...` in-process; arguments are passed as their str()."""
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def succeeded(result: Result) -> Result:
    """result, checked to be a clean exit with status 0 (the output shows otherwise)."""
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.exception
    return result


def error_line(result: Result) -> str:
    """The error a failed command reported: exit status 1 through SystemExit (no traceback), and
    "Error: ..." as the last line of its stderr."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def failed(result: Result, message: str) -> str:
    """The error line of a failed command, checked to contain message."""
    line = error_line(result)
    assert message in line, line
    return line


def failed_matching(result: Result, pattern: str) -> str:
    """The error line of a failed command, checked to match the regular expression pattern."""
    line = error_line(result)
    assert re.search(pattern, line), line
    return line
