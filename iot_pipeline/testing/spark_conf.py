"""The benchmarks' ``--conf KEY=VALUE`` option: measure a Spark setting without editing the code."""

from __future__ import annotations

import argparse


def add_conf_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting on top of the production ones (repeatable), to measure a configuration",
    )


def conf_settings(args: argparse.Namespace) -> dict[str, str]:
    """The ``--conf`` settings as a ``spark_config`` mapping."""
    return dict(c.split("=", 1) for c in args.conf)
