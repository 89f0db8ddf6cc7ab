"""The one dispatcher of state-changing actions, whatever they came by (HTTP, dashboard, CLI).

Frigate's dispatcher, for the hub: an action is a frozen dataclass, checked
when it is built (``ActionError`` names what is wrong); ``Dispatcher.perform``
runs it and appends its audit entry in ONE transaction of the hub store, so
an outbox row the hub will publish (revocation delta, command) never exists
without its audit entry, and vice versa. With an ``Idempotency-Key`` the
recorded answer is replayed, in the same transaction, so concurrent retries
revoke once. The running hub notices the commit (``changed_elsewhere``)
and signs and publishes the outbox rows, as for ``lungta hub revoke``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.hub_messages import COMMANDS, REFRESH_REVOCATIONS, Command, RevocationEntry, command_args_problem
from protocol.topics import REVOCATIONS, TopicError, check_name

from ..config import HubConfig
from ..quota import Quota, QuotaError, overlapping
from ..quota_text import check_cap, parse_day, parse_slot, slot_row
from .passwords import hash_password, new_token, token_hash
from .roles import Permission, Principal, Role
from .store import ConsoleStore

log = logging.getLogger(__name__)

MAX_REVOCATIONS = 10_000


class ActionError(ValueError):
    """An action that cannot be done as asked; ``status`` is the HTTP answer (422 invalid, 404 unknown, 409 conflict)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Revoke:
    ticket_ids: tuple[bytes, ...]
    reason: str
    expires: int | None = None  # Unix s; None: revocation_days from now
    permission = Permission.REVOKE


@dataclass(frozen=True)
class Unrevoke:
    ticket_ids: tuple[bytes, ...]
    reason: str
    permission = Permission.REVOKE


@dataclass(frozen=True)
class SetQuota:
    quota: Quota
    permission = Permission.QUOTA


@dataclass(frozen=True)
class SendCommand:
    gates: tuple[str, ...] | None  # None: every gate of the site
    command: Command
    permission = Permission.COMMAND


@dataclass(frozen=True)
class AckAlert:
    alert_id: str
    permission = Permission.ALERT_ACK


@dataclass(frozen=True)
class AddAccount:
    name: str
    role: Role
    password: str
    permission = Permission.ACCOUNTS


@dataclass(frozen=True)
class AddToken:
    name: str
    role: Role
    permission = Permission.ACCOUNTS


@dataclass(frozen=True)
class RemoveAccount:
    """An operator who left: the account goes and its open sessions end now."""

    name: str
    permission = Permission.ACCOUNTS


@dataclass(frozen=True)
class RevokeToken:
    """A token leaked or retired: every token of this name stops working now."""

    name: str
    permission = Permission.ACCOUNTS


@dataclass(frozen=True)
class PublishTrustList:
    """A trust list signed offline with the site root key (hub/trustlist.py); the running hub publishes it."""

    signed: bytes
    permission = Permission.TRUST


Action = Revoke | Unrevoke | SetQuota | SendCommand | AckAlert | AddAccount | AddToken | RemoveAccount | RevokeToken | PublishTrustList


@dataclass(frozen=True)
class Outcome:
    """What the caller is told: an HTTP status and a JSON body; ``replayed`` for an idempotent retry."""

    status: int
    body: dict
    replayed: bool = False


def ticket_ids(texts: object) -> tuple[bytes, ...]:
    """Hex ticket ids from JSON or the command line, 1..MAX_REVOCATIONS of them, 12..32 bytes each."""
    if not isinstance(texts, list) or not texts:
        raise ActionError("ticket_ids must be a non-empty array of hex ticket ids")
    if len(texts) > MAX_REVOCATIONS:
        raise ActionError(f"{len(texts)} ticket ids in one call; at most {MAX_REVOCATIONS}")
    out = []
    for text in texts:
        try:
            raw = bytes.fromhex(text) if isinstance(text, str) else b""
        except ValueError:
            raw = b""
        if not 12 <= len(raw) <= 32:
            raise ActionError(f"ticket id {str(text)[:80]!r} is not 12..32 bytes of hex (the ticket_id 'lungta ticket inspect' prints)")
        out.append(raw)
    return tuple(dict.fromkeys(out))


def command_of(name: object, args: object) -> Command:
    """A command the gates understand, with arguments of the right types; anything else is a 422."""
    if not isinstance(name, str) or name not in COMMANDS:
        raise ActionError(f"unknown command {name!r}; gates act on: {', '.join(COMMANDS)}")
    if not isinstance(args, dict):
        raise ActionError("command args must be an object")
    problem = command_args_problem(name, args)  # the same check the gate makes when it decodes the command
    if problem is not None:
        raise ActionError(problem)
    return Command(name, dict(args))


def gate_names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ActionError("gates must be a non-empty array of gate ids")
    try:
        return tuple(check_name(gate, "gate") for gate in value)
    except TopicError as error:
        raise ActionError(str(error)) from None


def fingerprint(action: Action) -> str:
    """A stable digest of what was asked, so an Idempotency-Key reused for a different request is refused."""
    return hashlib.sha256(repr(action).encode()).hexdigest()


class Dispatcher:
    """Checks the permission, performs the action and audits it, atomically. One per store (per thread)."""

    def __init__(self, store: ConsoleStore, config: HubConfig, clock: Callable[[], float]) -> None:
        self.store, self.config, self._clock = store, config, clock
        # each handler takes its own action type; perform() picks it by type(action)
        self._handlers: dict[type, Callable[[Principal, Any, int], tuple[int, dict, dict]]] = {
            Revoke: self._revoke, Unrevoke: self._unrevoke, SetQuota: self._set_quota, SendCommand: self._command,
            AckAlert: self._ack_alert, AddAccount: self._add_account, AddToken: self._add_token, RemoveAccount: self._remove_account,
            RevokeToken: self._revoke_token, PublishTrustList: self._trust_list,
        }

    def perform(self, who: Principal, action: Action, idempotency_key: str | None = None) -> Outcome:
        if not who.may(action.permission):
            raise ActionError(f"role {who.role.value} may not {action.permission.value}", 403)
        now_ms = int(self._clock() * 1000)
        with self.store.transaction():
            if idempotency_key is not None:
                seen = self.store.idempotent_response(idempotency_key)
                if seen is not None:
                    return self._replay(who, action, idempotency_key, seen)
            status, body, detail = self._handlers[type(action)](who, action, now_ms)
            entry = self.store.append_audit(who, type(action).__name__.lower(), detail, now_ms)
            body = {**body, "audit_seq": entry.seq}
            if isinstance(action, (Revoke, Unrevoke)):
                self.store.log_revocations(list(action.ticket_ids), type(action).__name__.lower(), action.reason, who.name, now_ms, entry.seq)
            if idempotency_key is not None:
                self.store.save_idempotent_response(idempotency_key, who.name, fingerprint(action), status, body, now_ms)
        log.info("action=%s actor=%s role=%s origin=%s audit_seq=%d", type(action).__name__.lower(), who.name, who.role.value, who.origin, entry.seq)
        return Outcome(status, body)

    def _replay(self, who: Principal, action: Action, key: str, seen: tuple[str, str, int, dict]) -> Outcome:
        actor, request, status, body = seen
        if actor != who.name or request != fingerprint(action):
            raise ActionError(f"Idempotency-Key {key!r} was used for a different request", 409)
        return Outcome(status, body, replayed=True)

    def _revoke(self, who: Principal, action: Revoke, now_ms: int) -> tuple[int, dict, dict]:
        expires = action.expires or now_ms // 1000 + self.config.revocation_days * 86_400
        if expires * 1000 <= now_ms:
            raise ActionError("expires is in the past: gates would drop the revocation at once")
        entries = [RevocationEntry(ticket_id, expires) for ticket_id in action.ticket_ids]
        rows = self.store.add_revocations(entries, action.reason or None, now_ms, self.config.snapshot_chunk)
        body = {"revoked": len(entries), "stream": REVOCATIONS, "seqs": [row.seq for row in rows], "expires": expires}
        return 201, body, {"tickets": [t.hex() for t in action.ticket_ids[:50]], "count": len(entries), "reason": action.reason, "seqs": body["seqs"]}

    def _unrevoke(self, who: Principal, action: Unrevoke, now_ms: int) -> tuple[int, dict, dict]:
        """Out of the hub's set, and every gate told to take a fresh snapshot: a delta cannot take a ticket out of a gate's set."""
        dropped = self.store.forget_revocations(list(action.ticket_ids))
        gates = [health.gate for health in self.store.gates()] if dropped else []
        for gate in gates:
            self.store.add_command(gate, Command(REFRESH_REVOCATIONS, {}), now_ms)
        body = {"unrevoked": dropped, "refresh_sent_to": len(gates)}
        return 200, body, {"tickets": [t.hex() for t in action.ticket_ids[:50]], "count": dropped, "reason": action.reason, "refresh_sent_to": len(gates)}

    def _set_quota(self, who: Principal, action: SetQuota, now_ms: int) -> tuple[int, dict, dict]:
        quota = action.quota
        clash = overlapping(quota, self.store.quotas(quota.day, quota.day))
        if clash is not None:
            raise ActionError(f"slot {quota.slot} overlaps slot {clash.slot} of {quota.day}; a gate counts an admission against one slot only", 409)
        self.store.set_quota(quota, now_ms)
        row = slot_row(quota, self.store.quota_ledger(quota.day, quota.slot_start, 0), self.config.quota_skew_s * 1000)
        return 200, {"site": self.config.site, **row}, {"date": quota.day, "slot": quota.slot, "cap": quota.cap}

    def _command(self, who: Principal, action: SendCommand, now_ms: int) -> tuple[int, dict, dict]:
        known = [health.gate for health in self.store.gates()]
        gates = list(action.gates) if action.gates is not None else known
        unknown = sorted(set(gates) - set(known))
        if unknown:
            raise ActionError(f"no gate {unknown[0]!r} has ever reported to this hub", 404)
        if not gates:
            raise ActionError("the site has no gate yet", 409)
        rows = [self.store.add_command(gate, action.command, now_ms) for gate in gates]
        sent = [{"gate": gate, "stream": row.stream, "seq": row.seq} for gate, row in zip(gates, rows)]
        detail = {"command": action.command.name, "args": action.command.args, "gates": gates if action.gates is not None else "site"}
        return 201, {"command": action.command.name, "args": action.command.args, "sent": sent}, detail

    def _ack_alert(self, who: Principal, action: AckAlert, now_ms: int) -> tuple[int, dict, dict]:
        self.store.ack_alert(action.alert_id, who.name, now_ms)
        return 200, {"alert": action.alert_id, "acknowledged_by": who.name}, {"alert": action.alert_id}

    def _add_account(self, who: Principal, action: AddAccount, now_ms: int) -> tuple[int, dict, dict]:
        try:
            name = check_name(action.name, "account name")
            digest = hash_password(action.password)
        except (TopicError, ValueError) as error:
            raise ActionError(str(error)) from None
        if not self.store.add_account(name, action.role, digest, now_ms):
            raise ActionError(f"account {name!r} exists", 409)
        return 201, {"name": name, "role": action.role.value}, {"name": name, "role": action.role.value}

    def _add_token(self, who: Principal, action: AddToken, now_ms: int) -> tuple[int, dict, dict]:
        try:
            name = check_name(action.name, "token name")
        except TopicError as error:
            raise ActionError(str(error)) from None
        token = new_token()
        self.store.add_credential(token_hash(token), "token", name, action.role, now_ms, None)
        return 201, {"name": name, "role": action.role.value, "token": token}, {"name": name, "role": action.role.value}

    def _remove_account(self, who: Principal, action: RemoveAccount, now_ms: int) -> tuple[int, dict, dict]:
        if not self.store.remove_account(action.name):
            raise ActionError(f"no account {action.name!r}", 404)
        return 200, {"removed": action.name}, {"name": action.name}

    def _revoke_token(self, who: Principal, action: RevokeToken, now_ms: int) -> tuple[int, dict, dict]:
        count = self.store.revoke_tokens(action.name)
        if not count:
            raise ActionError(f"no token named {action.name!r}", 404)
        return 200, {"revoked_tokens": count, "name": action.name}, {"name": action.name, "count": count}

    def _trust_list(self, who: Principal, action: PublishTrustList, now_ms: int) -> tuple[int, dict, dict]:
        from protocol.errors import KeyFileError
        from protocol.keys import load_verify_key
        from protocol.trustlist import StaleTrustList, TrustListError, describe

        from ..trustlist import record_trust_list

        if self.config.site_root is None:
            raise ActionError("hub.toml has no site_root: this hub cannot check a trust list (docs/security.md, issuer key rotation)", 409)
        try:
            trust_list = record_trust_list(self.store.db, action.signed, load_verify_key(self.config.site_root), self.config.site, now_ms)
        except KeyFileError as error:
            raise ActionError(f"hub.site_root: {error}", 409) from None
        except StaleTrustList as error:
            raise ActionError(f"trust list refused: {error}; sign it again with a higher --version", 409) from None
        except TrustListError as error:
            raise ActionError(f"trust list refused ({error.reason}): {error}") from None
        body = describe(trust_list)
        return 201, body, {"version": trust_list.version, "keys": [f"{key['name']}:{key['kid']}" for key in body["keys"]]}


def quota_of(day: str, slot: str, cap: object) -> Quota:
    """A Quota from API text, with hub.quota's own checks; a bad value is a 422 naming it."""
    try:
        if type(cap) is not int:
            raise QuotaError(f"cap {cap!r} is not a whole number of persons")
        return Quota(parse_day(day), *parse_slot(slot), check_cap(cap))
    except QuotaError as error:
        raise ActionError(str(error)) from None

