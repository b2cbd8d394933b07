"""The `bp-train` command line: `main` is the click group, one file per family of commands."""

from .main import main

__all__ = ["main"]
