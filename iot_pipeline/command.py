"""One ``iot-pipeline`` command, also runnable on its own as ``python -m <module>``.

``iot_pipeline/cli.py`` gathers the commands; a command module declares its ``COMMAND`` and exposes
``register`` (for the dispatcher) and ``main`` (standalone) from it, so both parsers are the same.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    module: str  # what ``python -m`` runs, for the standalone parser's usage line
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]

    def _configure(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        self.add_arguments(parser)
        parser.set_defaults(func=self.run)
        return parser

    def register(self, subparsers: Any) -> argparse.ArgumentParser:
        return self._configure(
            subparsers.add_parser(
                self.name,
                help=self.help,
                description=self.description,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )

    def parser(self) -> argparse.ArgumentParser:
        return self._configure(
            argparse.ArgumentParser(
                prog=f"python -m {self.module}",
                description=self.description,
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )

    def main(self, argv: Sequence[str] | None = None) -> int:
        args = self.parser().parse_args(argv)
        return int(args.func(args) or 0)
