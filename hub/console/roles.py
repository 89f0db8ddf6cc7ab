"""Who may do what: four roles, each a fixed set of permissions.

The matrix is data, in one place: the API checks a route's permission
against it, the dashboard hides what a role may not do (from ``/api/v1/me``),
and tests/hub/console/test_roles.py walks it against every route.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    VIEWER = "viewer"      # control room: read everything but the audit log and accounts
    OPERATOR = "operator"  # revoke, quotas, commands, acknowledge alerts
    ADMIN = "admin"        # all of the above, accounts and tokens
    SALES = "sales"        # ticket office / finance: revocations only


class Permission(enum.StrEnum):
    SESSION = "session"  # who am I, log out: every role
    READ = "read"
    REVOCATIONS_READ = "revocations_read"
    REVOKE = "revoke"
    QUOTA = "quota"
    COMMAND = "command"
    ALERT_ACK = "alert_ack"
    AUDIT_READ = "audit_read"
    ACCOUNTS = "accounts"
    TRUST = "trust"  # publish a site trust list (issuer keys): admin only


_READER = {Permission.SESSION, Permission.READ, Permission.REVOCATIONS_READ}
_OPERATOR = _READER | {Permission.REVOKE, Permission.QUOTA, Permission.COMMAND, Permission.ALERT_ACK, Permission.AUDIT_READ}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_READER),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(_OPERATOR | {Permission.ACCOUNTS, Permission.TRUST}),
    Role.SALES: frozenset({Permission.SESSION, Permission.REVOCATIONS_READ, Permission.REVOKE}),
}


class RoleError(ValueError):
    """A role name that is not one of ``Role``."""


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise RoleError(f"role {text!r} is not one of {', '.join(role.value for role in Role)}") from None


@dataclass(frozen=True)
class Principal:
    """Who is acting: an account, a token, or a local OS user at the CLI; ``origin`` is where from."""

    name: str
    role: Role
    kind: str  # "user" | "token" | "os-user"
    origin: str

    def may(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]
