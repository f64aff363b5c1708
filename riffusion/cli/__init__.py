"""The `riffusion` command line."""
