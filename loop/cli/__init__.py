"""The ``loop`` command line (:mod:`loop.cli.main` builds it from one app per group)."""

from loop.cli.main import app, main

__all__ = ["app", "main"]
