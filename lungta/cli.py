"""The ``lungta`` command: one entry point, one subcommand module per part.

Every failure a user can cause ends here as one line on stderr and exit
status 2; output meant for programs is JSON on stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from gate.cache.revocation_files import RevocationStoreError
from gate.cache.state import StateError
from gate.scanner.errors import ScannerError
from gate.turnstile.errors import TurnstileError
from hub.sqlite_store import HubStoreError
from protocol.errors import KeyFileError

from . import __version__, gate_cli, hub_cli, scan_cli, ticket_cli
from .config import ConfigError
from .errors import CommandError

EXIT_USAGE = 2
# Failures a user causes or must fix (config, files, devices): one line, no traceback.
USER_ERRORS = (CommandError, KeyFileError, ConfigError, StateError, RevocationStoreError, ScannerError, TurnstileError, HubStoreError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lungta",
        description="Lungta offline ticket gates: mint and inspect tickets, validate them at a gate, run gates and the hub.",
    )
    parser.add_argument("--version", action="version", version=f"lungta {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging threshold (default WARNING; INFO for daemons)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ticket_cli.add_commands(commands)
    gate_cli.add_commands(commands)
    scan_cli.add_commands(commands)
    hub_cli.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = args.log_level or getattr(args, "default_log_level", "WARNING")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.run(args) or 0)
    except USER_ERRORS as error:
        print(f"lungta: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
