"""`python -m riffusion.cli CMD`, the original project's entry point."""

from riffusion.cli.main import cli

cli(prog_name="python -m riffusion.cli")
