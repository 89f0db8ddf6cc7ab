"""The ``lungta`` command: one entry point, one subcommand module per part.

Every failure a user can cause ends here as one line on stderr and exit
status 2; output meant for programs is JSON on stdout.

Start-up is kept cheap: only the module of the command asked for is
imported (``COMMANDS`` names it), and that module imports the heavy parts
(OpenCV, numpy, paho, the hub) inside the functions that use them. So
``lungta --help`` and ``lungta ticket issue`` cost little more than PyNaCl
(bench/bench_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import user_error_types
from .journal import configure_logging

EXIT_USAGE = 2

# Command -> (module in this package that adds it, one-line help). The module's
# ``add_commands(commands)`` adds its parser(s); only the chosen one is imported.
# P5's operator console registers here too: one line, e.g. "console": ("console_cli", "...").
COMMANDS: dict[str, tuple[str, str]] = {
    "keygen": ("ticket_cli", "create an Ed25519 signing key pair (PEM)"),
    "ticket": ("ticket_cli", "mint, batch-print or inspect tickets"),
    "gate": ("gate_cli", "validate tickets, inspect, test and run a gate"),
    "scan": ("scan_cli", "decode QR codes in images or a video as a gate camera would"),
    "hub": ("hub_cli", "run a site hub and operate it"),
    "site": ("site_cli", "provision a site: CA, broker files, hub key, one bundle per gate"),
}


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` that names a command (options before it skipped)."""
    skip_next = False
    for word in argv:
        if skip_next:
            skip_next = False
        elif word == "--log-level":
            skip_next = True
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser, complete for the command ``argv`` asks for (every command when None)."""
    parser = argparse.ArgumentParser(
        prog="lungta",
        description="Lungta offline ticket gates: mint and inspect tickets, validate them at a gate, run gates and the hub.",
    )
    parser.add_argument("--version", action="version", version=f"lungta {__version__}")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging threshold (default WARNING; INFO for daemons)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen_command(argv) if argv is not None else None
    modules = [module for module, _ in COMMANDS.values()] if argv is None else [COMMANDS[chosen][0]] if chosen else []
    for module_name in dict.fromkeys(modules):
        importlib.import_module(f"{__package__}.{module_name}").add_commands(commands)
    for name, (_, summary) in COMMANDS.items():
        if name not in commands.choices:  # listed in --help, parsed once chosen
            commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    level = args.log_level or getattr(args, "default_log_level", "WARNING")
    configure_logging(level, sys.stderr)  # under systemd, each line carries its level for journalctl -p
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:
        return 0
    except Exception as error:  # only the user errors below are answered here; the rest propagate
        if not isinstance(error, user_error_types()):
            raise
        print(f"lungta: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
