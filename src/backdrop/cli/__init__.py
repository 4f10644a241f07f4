"""The `backdrop` command line: argument parsing and printing only; the work is in the library.
One module per command group: creative (generate, segment, report, store, styles, demo), evaluation
(evaluate, simulate), serving (serve, learn), console (console, console-user), qa (evaluate), experiments
(abtest, study, cost, evolve), export (feed).

Exit codes: 0 success, 1 the data had problems (bad rows with --strict, nothing succeeded),
2 bad usage or configuration, 3 the environment failed the run (disk full, permissions, read-only
media: `generate` never reports those as success).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..errors import BackdropError, EnvironmentFailure
from . import console, creative, evaluation, experiments, export, qa, serving
from ._common import Formatter
from .creative import DEMO_DIR, DEMO_PLACEMENTS, DEMO_STYLES_PER_PRODUCT

__all__ = ["DEMO_DIR", "DEMO_PLACEMENTS", "DEMO_STYLES_PER_PRODUCT", "build_parser", "main"]
GROUPS = (creative, export, evaluation, serving, console, qa, experiments)


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The parser, and command name -> handler."""
    parser = argparse.ArgumentParser(
        prog="backdrop",
        formatter_class=Formatter,
        description=(
            "Backdrop makes personalized product creatives for e-commerce ads: each catalog product is placed\n"
            "on every ad placement's canvas, a background is generated around it (the product's pixels stay\n"
            "exact), and creatives are stored content-addressed so nothing is generated twice.\n\n"
            "Start with `backdrop demo`, then `backdrop generate CATALOG --out STORE` on your own catalog."
        ),
    )
    parser.add_argument("--version", action="version", version=f"backdrop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    handlers: dict = {}
    for group in GROUPS:
        handlers.update(group.register(sub))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except EnvironmentFailure as e:
        print(f"backdrop {args.command}: error: {e}", file=sys.stderr)
        return 3
    except BackdropError as e:
        print(f"backdrop {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"backdrop {args.command}: interrupted; finished work is kept, run again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): no traceback, and none at exit's flush either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a command killed by SIGPIPE


if __name__ == "__main__":
    raise SystemExit(main())
