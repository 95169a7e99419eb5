"""The command line: thin commands that parse arguments, build a config and call the library.

``main`` (the ``gankit`` entry point) and its parser are in :mod:`gankit.cli.main`; each group of
commands registers itself from its own module (``train``, ``sample``, ``data``, ``classifier``,
``evaluate``, ``view``, ``toy``).
"""

from gankit.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
