"""``lungta hub token create | user add | audit verify``, and the CLI's side of the console's dispatcher.

``lungta hub revoke``, ``command`` and ``quota set`` perform their action
through ``hub.console.actions.Dispatcher`` as the local OS user (role
admin: whoever can run the CLI on the hub box can read its database), so
the audit log records them like the API's (``cli_perform``).
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CommandError
from .output import emit
from .paths import hub_database

if TYPE_CHECKING:  # the hub's modules load paho (through hub.config): imported where a command runs
    from hub.config import HubConfig
    from hub.console.actions import Action, Outcome
    from hub.console.roles import Principal, Role
    from hub.console.server import ConsoleServer
    from hub.service import HubService


def add_console_commands(hub: argparse._SubParsersAction) -> None:
    token = hub.add_parser("token", help="API tokens for the console", description="Tokens for programs (ticket office, Prometheus...); stored hashed.")
    token_actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_actions.add_parser("create", help="create a token; it is printed once, on the last line")
    create.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    create.add_argument("--role", required=True, metavar="ROLE", help="viewer, operator, admin or sales")
    create.add_argument("--name", required=True, metavar="NAME", help="what the token is for (shown in the audit log)")
    create.set_defaults(run=run_token_create)
    revoke = token_actions.add_parser("revoke", help="revoke every token of a name (leaked, or its program retired)")
    revoke.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    revoke.add_argument("--name", required=True, metavar="NAME", help="the name it was created with")
    revoke.set_defaults(run=run_token_revoke)

    user = hub.add_parser("user", help="operator accounts of the console")
    user_actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_actions.add_parser("add", help="create an account; the password is read from stdin")
    add.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    add.add_argument("--role", required=True, metavar="ROLE", help="viewer, operator, admin or sales")
    add.add_argument("name", metavar="NAME")
    add.set_defaults(run=run_user_add)
    remove = user_actions.add_parser("remove", help="remove an account; its open dashboard sessions end at once")
    remove.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=run_user_remove)

    audit = hub.add_parser("audit", help="the console's audit log")
    audit_actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = audit_actions.add_parser("verify", help="check the hash chain of the audit log; exit 1 if it was tampered with")
    verify.add_argument("--config", required=True, type=Path, metavar="FILE", help="hub.toml")
    verify.set_defaults(run=run_audit_verify)


def start_console(config: HubConfig, service: "HubService") -> "ConsoleServer | None":
    """The console of ``lungta hub run`` (None without [http]); a port taken or a bad certificate is one line."""
    from hub.console.server import ConsoleStartError, start_for_service

    try:
        return start_for_service(config, service)
    except ConsoleStartError as error:
        raise CommandError(f"{error} (in the hub.toml of site {config.site})") from None


def cli_principal() -> Principal:
    """The local OS user at the hub box, as the audit log names them."""
    from hub.console.roles import Principal, Role

    return Principal(getpass.getuser(), Role.ADMIN, "os-user", f"cli@{socket.gethostname()}")


def cli_perform(config: HubConfig, action: Action, source: Path | None = None) -> Outcome:
    """Perform ``action`` as the OS user through the console's dispatcher; a refusal is one line,
    and so is a hub database that cannot be used (lungta/paths.py)."""
    from hub.console.actions import ActionError, Dispatcher
    from hub.console.store import ConsoleStore

    with hub_database(config, source, ConsoleStore) as store:
        try:
            return Dispatcher(store, config, time.time).perform(cli_principal(), action)
        except ActionError as error:
            raise CommandError(str(error)) from None


def _role(text: str) -> Role:
    from hub.console.roles import RoleError, parse_role

    try:
        return parse_role(text)
    except RoleError as error:
        raise CommandError(str(error)) from None


def run_token_create(args: argparse.Namespace) -> None:
    from hub.console.actions import AddToken

    from .config import load_hub_config

    config = load_hub_config(args.config)
    outcome = cli_perform(config, AddToken(args.name, _role(args.role)), args.config)
    sys.stderr.write(f"token {outcome.body['name']} ({outcome.body['role']}) created; it is shown once, keep it secret:\n")
    sys.stdout.write(outcome.body["token"] + "\n")


def run_user_add(args: argparse.Namespace) -> None:
    from hub.console.actions import AddAccount

    from .config import load_hub_config

    config = load_hub_config(args.config)
    role = _role(args.role)
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\r\n")
    outcome = cli_perform(config, AddAccount(args.name, role, password), args.config)
    emit(outcome.body)


def run_token_revoke(args: argparse.Namespace) -> None:
    from hub.console.actions import RevokeToken

    from .config import load_hub_config

    emit(cli_perform(load_hub_config(args.config), RevokeToken(args.name), args.config).body)


def run_user_remove(args: argparse.Namespace) -> None:
    from hub.console.actions import RemoveAccount

    from .config import load_hub_config

    emit(cli_perform(load_hub_config(args.config), RemoveAccount(args.name), args.config).body)


def run_audit_verify(args: argparse.Namespace) -> int:
    from hub.console.audit import verify_chain
    from hub.console.store import ConsoleStore

    from .config import load_hub_config

    config = load_hub_config(args.config)
    with hub_database(config, args.config, ConsoleStore, must_exist=True) as store:
        report = verify_chain(store.audit_entries())
    emit({"ok": report.ok, "entries": report.entries, "head": report.head, **({"broken_at": report.broken_at, "problem": report.problem} if not report.ok else {})})
    if not report.ok:
        sys.stderr.write(f"lungta: audit log of {config.database} is NOT intact: {report.problem}\n")
        return 1
    return 0
