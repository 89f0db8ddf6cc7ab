"""Why an MQTT connect failed, in words an installer can act on.

paho-mqtt 2.x reports a failed TCP or TLS connect only through
``on_connect_fail(client, userdata)``, without the exception; it calls it
inside the ``except OSError`` of its reconnect loop, so the exception is
still ``sys.exc_info()`` there (``diagnose_current``). A CONNACK refusal
comes with its v5 reason code (``diagnose_connack``). A connection the
broker closes before or right after CONNECT reaches ``on_disconnect`` as
"Unspecified error" with nothing else: paho logs the socket error it saw
(``on_log``), and when even that is empty a cheap probe of the port
(``probe``: one TCP connect and TLS handshake) says what is on the other
side. Each answer is a ``ConnectFailure`` whose ``kind`` is what the link
logs once per change, so a broker away for an hour gives one line.
"""

from __future__ import annotations

import enum
import errno
import socket
import ssl
import sys
from dataclasses import dataclass

PROBE_TIMEOUT_S = 3.0

# OpenSSL X509_V_ERR_* codes (ssl.SSLCertVerificationError.verify_code) grouped by what the installer fixes
_UNKNOWN_CA = {2, 18, 19, 20, 21}  # issuer not found, self-signed, self-signed in chain, no local issuer, cannot verify leaf
_EXPIRED = {9, 10}  # not yet valid, expired
_HOSTNAME = {62, 64}  # hostname mismatch, IP address mismatch


class FailureKind(enum.StrEnum):
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    NAME_NOT_FOUND = "name_not_found"
    TLS_HOSTNAME = "tls_hostname_mismatch"
    TLS_UNKNOWN_CA = "tls_unknown_ca"
    TLS_EXPIRED = "tls_expired"
    TLS_FAILED = "tls_failed"
    NOT_TLS = "port_not_tls"
    TLS_EXPECTED = "port_wants_tls"
    BAD_CREDENTIALS = "bad_credentials"
    NOT_AUTHORISED = "not_authorised"
    REJECTED = "rejected"
    TAKEN_OVER = "session_taken_over"
    CLOSED = "closed_by_broker"


# what to do about each, appended to the log line (docs/install.md lists them)
ADVICE = {
    FailureKind.REFUSED: "is the broker running and is this its port?",
    FailureKind.UNREACHABLE: "check the network, the address and any firewall",
    FailureKind.NAME_NOT_FOUND: "check host in the config and the DNS or /etc/hosts",
    FailureKind.TLS_HOSTNAME: "connect with a host name the broker certificate names (or reissue it for this name)",
    FailureKind.TLS_UNKNOWN_CA: "cafile must be the site CA that signed the broker certificate",
    FailureKind.TLS_EXPIRED: "renew the broker certificate, or set this machine's clock",
    FailureKind.TLS_FAILED: "check cafile, certfile and keyfile against the broker's TLS listener",
    FailureKind.NOT_TLS: "this port speaks plain MQTT: use the broker's TLS port (8883) or drop cafile",
    FailureKind.TLS_EXPECTED: "this port wants TLS: set cafile (the site CA) in the config",
    FailureKind.BAD_CREDENTIALS: "check username and password (password_file) against the broker's password file",
    FailureKind.NOT_AUTHORISED: "wrong username or password, or a user the broker does not let in: check password_file against the broker's password file",
    FailureKind.REJECTED: "see the broker's log",
    FailureKind.TAKEN_OVER: "another client logs in with this identity: a second hub for this site, or two gates with one gate id",
    FailureKind.CLOSED: "see the broker's log (a client certificate it refuses, a second client with this identity, a limit)",
}


@dataclass(frozen=True)
class ConnectFailure:
    """One cause of a failed or lost connection; ``detail`` is the evidence (the exception's or broker's words)."""

    kind: FailureKind
    detail: str

    def line(self, host: str, port: int) -> str:
        """The one log line: broker, kind, evidence, what to do."""
        return f"cannot connect to broker {host}:{port}: cause={self.kind.value} ({self.detail}); {ADVICE[self.kind]}"


def diagnose_error(error: BaseException, host: str, tls: bool = False) -> ConnectFailure:
    """Classify the exception a TCP connect or TLS handshake raised (``tls``: the link speaks TLS)."""
    if tls and isinstance(error, (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return ConnectFailure(FailureKind.NOT_TLS, f"the broker ended the TLS handshake: {error}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return _certificate(error)
    if isinstance(error, ssl.SSLError):
        reason = error.reason or str(error)
        if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
            return ConnectFailure(FailureKind.NOT_TLS, f"TLS handshake failed: {reason}")
        return ConnectFailure(FailureKind.TLS_FAILED, f"TLS: {reason}")
    if isinstance(error, socket.gaierror):
        return ConnectFailure(FailureKind.NAME_NOT_FOUND, f"name {host!r} not found: {error.strerror}")
    if isinstance(error, ConnectionRefusedError):
        return ConnectFailure(FailureKind.REFUSED, "connection refused: nothing listens there")
    if isinstance(error, (TimeoutError, socket.timeout)) or getattr(error, "errno", None) in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT):
        return ConnectFailure(FailureKind.UNREACHABLE, f"no answer: {error}")
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return ConnectFailure(FailureKind.CLOSED, f"the broker closed the connection: {error}")
    return ConnectFailure(FailureKind.UNREACHABLE, f"{type(error).__name__}: {error}")


def _certificate(error: ssl.SSLCertVerificationError) -> ConnectFailure:
    code, message = error.verify_code, error.verify_message or str(error)
    if code in _HOSTNAME:
        return ConnectFailure(FailureKind.TLS_HOSTNAME, f"certificate verify failed: {message}")
    if code in _EXPIRED:
        return ConnectFailure(FailureKind.TLS_EXPIRED, f"certificate verify failed: {message}")
    if code in _UNKNOWN_CA:
        return ConnectFailure(FailureKind.TLS_UNKNOWN_CA, f"certificate verify failed: {message}")
    return ConnectFailure(FailureKind.TLS_FAILED, f"certificate verify failed: {message}")


def diagnose_current(host: str, tls: bool) -> ConnectFailure | None:
    """The exception being handled, classified: paho calls ``on_connect_fail`` inside its ``except OSError``."""
    error = sys.exc_info()[1]
    return None if error is None else diagnose_error(error, host, tls)


def diagnose_connack(reason: object) -> ConnectFailure:
    """A CONNACK refusal by its v5 reason code (134 bad user name or password, 135 not authorised...)."""
    value = getattr(reason, "value", None)
    text = f"CONNACK {reason}"
    if value == 134 or value == 4:
        return ConnectFailure(FailureKind.BAD_CREDENTIALS, text)
    if value == 135 or value == 5:
        return ConnectFailure(FailureKind.NOT_AUTHORISED, text)
    return ConnectFailure(FailureKind.REJECTED, text)


def diagnose_closed(paho_error: str | None, host: str, port: int, tls: bool) -> ConnectFailure:
    """A connection paho lost before CONNACK ("Unspecified error"): its logged socket error, else a probe."""
    if paho_error and ("SSL" in paho_error or "TLS" in paho_error):
        return ConnectFailure(FailureKind.TLS_FAILED, paho_error)
    return probe(host, port, tls)


def listening(host: str, port: int) -> bool:
    """Whether the broker's port accepts a TCP connection right now (a broker going down or starting up refuses)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def probe(host: str, port: int, tls: bool) -> ConnectFailure:
    """One TCP connect (and, for a plain link, a TLS handshake attempt) to learn what paho hid.

    A plain link whose port completes a TLS handshake is talking to a TLS
    listener; otherwise the broker closed an otherwise sound connection.
    """
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
            if tls:
                return ConnectFailure(FailureKind.CLOSED, "the broker closed the connection after the TLS handshake (a client certificate it refuses?)")
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            try:
                with context.wrap_socket(sock, server_hostname=host):
                    return ConnectFailure(FailureKind.TLS_EXPECTED, "the broker closed the plain connection and answers a TLS handshake")
            except OSError:
                return ConnectFailure(FailureKind.CLOSED, "the broker closed the connection without a reason")
    except OSError as error:
        return diagnose_error(error, host, tls)
