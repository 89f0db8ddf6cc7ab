"""``lungta site init`` and ``lungta hub add-gate``: everything a site and each gate need, made once.

``site init`` makes the site folder, kept on the admin's machine (it holds
the CA key and the ticket office's signing key; never copy it whole to a
gate or the broker)::

    SITE/site.json                 what was made, for add-gate
    SITE/ca/ca.key, ca.crt         the site CA (TLS only)
    SITE/issuers/sales.key, .pub   the ticket office's signing key
    SITE/root/site-root.key, .pub  the site root key: signs trust lists; keep the .key OFFLINE
    SITE/trust.toml                the issuer keys every gate trusts (until the first trust list)
    SITE/trust-list.cose           the same keys as trust list version 1, signed by the site root
    SITE/broker/                   for the broker: certs/, lungta/acl, lungta/passwd, mosquitto.conf
    SITE/hub/                      for the hub box: hub.toml, hub.key, hub.pub, ca.crt, broker-password, trust.toml, site-root.pub

``hub add-gate NAME`` adds SITE/gates/NAME/ (gate.toml, trust.toml, hub.pub,
ca.crt, broker-password, site-root.pub) and SITE/gates/NAME.tar.gz, and puts the gate's
login into SITE/broker/lungta/passwd. Running it again for the same NAME
replaces the gate: a new password, the old one no longer accepted once the
broker has the new passwd file.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import timezone_of
from .errors import CommandError
from .output import emit
from .trust_cli import KEEP_OFFLINE, ROOT_NAME

if TYPE_CHECKING:
    from nacl.signing import SigningKey

DEFAULT_PORT = 8883
SITE_FILE = "site.json"


def add_commands(commands: argparse._SubParsersAction) -> None:
    site = commands.add_parser("site", help="provision a site: CA, broker files, hub key, one bundle per gate").add_subparsers(dest="site_command", required=True, metavar="ACTION")
    init = site.add_parser("init", help="make a new site folder: CA, broker certificate, ACL and passwords, hub config and key, issuer key", description=__doc__.split("\n\n")[1])
    init.add_argument("--site", required=True, help="the site name (1-64 letters, digits, '_' or '-'), as in every gate.toml")
    init.add_argument("--broker-host", required=True, action="append", metavar="HOST", help="host name or address the gates reach the broker by (repeatable; all go into its certificate, the first into the configs)")
    init.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the broker's TLS port (default {DEFAULT_PORT})")
    init.add_argument("--timezone", metavar="ZONE", help="the site's IANA time zone (default: the gate's, Asia/Shanghai)")
    init.add_argument("--out", required=True, type=Path, metavar="DIR", help="the site folder to make (must not exist)")
    init.set_defaults(run=run_init)
    from . import trust_cli  # light: its work is imported when it runs

    trust_cli.add_site_commands(site)


def add_gate_command(hub: argparse._SubParsersAction) -> None:
    gate = hub.add_parser("add-gate", help="make the bundle a new (or replaced) gate needs", description="Writes SITE/gates/NAME/ and NAME.tar.gz and adds the gate's login to SITE/broker/lungta/passwd. Again for the same NAME: a replacement gate, with a new password.")
    gate.add_argument("name", metavar="NAME", help="the gate id (its MQTT login)")
    gate.add_argument("--site-dir", required=True, type=Path, metavar="DIR", help="the folder 'lungta site init' made")
    gate.add_argument("--direction", choices=("entry", "exit", "both"), default="entry", help="what the gate is (default entry)")
    gate.set_defaults(run=run_add_gate)


def shared_file(relative: str) -> Path:
    """A file shipped beside the code: in this checkout, or where deploy/install.sh put it."""
    for base in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "lungta"):
        if (base / relative).is_file():
            return base / relative
    raise CommandError(f"{relative}: not found beside the code or in {Path(sys.prefix) / 'share' / 'lungta'} (reinstall with deploy/install.sh)")


def _check_name(value: str, what: str) -> str:
    from protocol.topics import TopicError, check_name

    try:
        return check_name(value, what)
    except TopicError as error:
        raise CommandError(str(error)) from None


def _fill(template: str, replacements: dict[str, str], where: str) -> str:
    """The template with each line replaced once; a template without it is a packaging error, named."""
    for old, new in replacements.items():
        if old not in template:
            raise CommandError(f"{where}: expected line {old!r} in the shipped example")
        template = template.replace(old, new, 1)
    return template


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    from protocol.keys import write_private_file

    write_private_file(path, text.encode("utf-8"), mode)


def _hash_passwords(users: dict[str, str]) -> list[str]:
    """``user:hash`` lines made by mosquitto_passwd (hub/broker_files.py), the passwords never on a command line."""
    from hub.broker_files import write_password_file

    if shutil.which("mosquitto_passwd") is None:
        raise CommandError("mosquitto_passwd not found: install it (apt-get install mosquitto) to make the broker's password file")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "passwd"
        write_password_file(path, users)
        return path.read_text(encoding="utf-8").splitlines()


def _set_login(passwd: Path, user: str, password: str) -> None:
    """Put ``user`` into the broker's password file, replacing a line it had (a replaced gate)."""
    kept = [line for line in passwd.read_text(encoding="utf-8").splitlines() if line and line.split(":", 1)[0] != user]
    new = passwd.with_suffix(".new")
    _write(new, "\n".join([*kept, *_hash_passwords({user: password})]) + "\n", 0o600)
    new.replace(passwd)


def run_init(args: argparse.Namespace) -> None:
    from protocol.keys import generate_signing_key, public_key_pem, write_key_pair

    from hub.broker_files import acl_text

    from .pki import make_ca, make_server_certificate, write_issued

    site = _check_name(args.site, "--site")
    if not 1 <= args.port <= 65535:
        raise CommandError("--port must be 1..65535")
    timezone = timezone_of(args).key
    if args.out.exists():
        raise CommandError(f"--out {args.out}: already exists; a site is made once (add gates with: lungta hub add-gate NAME --site-dir {args.out})")
    hub_template, conf = shared_file("systemd/hub.toml").read_text(encoding="utf-8"), shared_file("deploy/mosquitto/mosquitto.conf")
    host, hub_user = args.broker_host[0], f"hub-{site}"
    root = args.out
    for folder in ("ca", "issuers", "root", "broker/certs", "broker/lungta", "hub", "gates"):
        (root / folder).mkdir(mode=0o700, parents=True)
    ca = make_ca(site)
    write_issued(ca, root / "ca/ca.crt", root / "ca/ca.key")
    write_issued(make_server_certificate(ca, args.broker_host), root / "broker/certs/broker.crt", root / "broker/certs/broker.key")
    for copy in (root / "broker/certs/lungta-ca.crt", root / "hub/ca.crt"):
        _write(copy, ca.certificate.decode())
    _write(root / "broker/lungta/acl", acl_text(site, hub_user))
    shutil.copyfile(conf, root / "broker/mosquitto.conf")
    hub_password = secrets.token_urlsafe(24)
    _write(root / "broker/lungta/passwd", "\n".join(_hash_passwords({hub_user: hub_password})) + "\n", 0o600)
    _write(root / "hub/broker-password", hub_password + "\n", 0o600)
    hub_key = generate_signing_key()
    write_key_pair(hub_key, root / "hub", "hub")
    sales_key = generate_signing_key()
    write_key_pair(sales_key, root / "issuers", "sales")
    pem = public_key_pem(sales_key.verify_key).decode().strip()
    trust = f'# The issuer keys every gate of site {site} trusts (protocol/trust.py).\n[[key]]\nname = "sales"\npublic_key_pem = """\n{pem}\n"""\n'
    _write(root / "trust.toml", trust)
    _write(root / "hub/trust.toml", trust)  # the hub verifies admitted tickets with the same keys (hub.toml: trust)
    root_key = _make_site_root(root, site, sales_key)
    hub_toml = _fill(hub_template, {
        'site = "potala"': f'site = "{site}"',
        'host = "hub.potala.lan"': f'host = "{host}"',
        "port = 8883": f"port = {args.port}",
        'username = "hub-potala"': f'username = "{hub_user}"',
        'timezone = "Asia/Shanghai"': f'timezone = "{timezone}"',
        '# site_root = "site-root.pub"': 'site_root = "site-root.pub"',
    }, "systemd/hub.toml")
    _write(root / "hub/hub.toml", hub_toml, 0o640)
    record = {"site": site, "broker_hosts": args.broker_host, "port": args.port, "timezone": timezone, "hub_user": hub_user}
    _write(root / SITE_FILE, json.dumps(record, indent=2) + "\n")
    emit({**record, "site_dir": str(root), "site_root_key": str(root_key), "offline": KEEP_OFFLINE.format(key=root_key),
          "next": f"lungta hub add-gate NAME --site-dir {root}"})


def _make_site_root(root: Path, site: str, sales_key: "SigningKey") -> Path:
    """The site root key pair, its public key for the hub, and trust list version 1 (the sales key) signed by it."""
    import time

    from protocol.keys import generate_signing_key, write_key_pair, write_private_file
    from protocol.trust import TrustedKey
    from protocol.trustlist import new_trust_list, sign_trust_list

    key = generate_signing_key()
    private, public = write_key_pair(key, root / "root", ROOT_NAME)
    shutil.copyfile(public, root / "hub" / public.name)
    first = new_trust_list(site, 1, int(time.time()), [TrustedKey("sales", sales_key.verify_key)])
    write_private_file(root / "trust-list.cose", sign_trust_list(first, key), 0o644)
    return private


def _site(directory: Path) -> dict:
    try:
        record = json.loads((directory / SITE_FILE).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--site-dir {directory}: no {SITE_FILE} ({exc.strerror}); make the site with: lungta site init") from None
    except ValueError:
        raise CommandError(f"{directory / SITE_FILE}: damaged (not JSON)") from None
    return record


def run_add_gate(args: argparse.Namespace) -> None:
    from .config import load_gate_config

    record = _site(args.site_dir)
    name = _check_name(args.name, "gate")
    if name == record["hub_user"]:
        raise CommandError(f"gate {name!r}: that is the hub's login")
    folder, bundle = args.site_dir / "gates" / name, args.site_dir / "gates" / f"{name}.tar.gz"
    staging = args.site_dir / "gates" / f".{name}.new"  # made whole, then put in place: a failure leaves the old gate as it was
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700, parents=True)
    template = shared_file("systemd/gate.toml").read_text(encoding="utf-8")
    gate_toml = _fill(template, {
        'site = "potala"': f'site = "{record["site"]}"',
        'id = "east-1"': f'id = "{name}"',
        'direction = "entry"': f'direction = "{args.direction}"',
        'timezone = "Asia/Shanghai"': f'timezone = "{record["timezone"]}"',
        'host = "hub.potala.lan"': f'host = "{record["broker_hosts"][0]}"',
        "port = 8883": f"port = {record['port']}",
        'username = "east-1"': f'username = "{name}"',
    }, "systemd/gate.toml")
    # the example camera reads in the gate's direction (an exit gate has no entry reader)
    scanner_direction = "exit" if args.direction == "exit" else "entry"
    gate_toml = _fill(gate_toml, {'\ndirection = "entry"': f'\ndirection = "{scanner_direction}"'}, "systemd/gate.toml")
    root_pub = args.site_dir / "root" / f"{ROOT_NAME}.pub"
    if root_pub.is_file():  # the gate pins the site root; a site made before trust lists has none until 'lungta site root'
        gate_toml = _fill(gate_toml, {'# site_root = "site-root.pub"': f'site_root = "{root_pub.name}"'}, "systemd/gate.toml")
    password = secrets.token_urlsafe(24)
    _write(staging / "gate.toml", gate_toml, 0o640)
    _write(staging / "broker-password", password + "\n", 0o600)
    for source, target in (("hub/hub.pub", "hub.pub"), ("hub/ca.crt", "ca.crt"), ("trust.toml", "trust.toml")):
        shutil.copyfile(args.site_dir / source, staging / target)
    if root_pub.is_file():
        shutil.copyfile(root_pub, staging / root_pub.name)
    try:
        load_gate_config(staging / "gate.toml")  # what is handed out loads: a template drift is found here, not at the gate
    except BaseException:  # cleaned up, then re-raised as it was
        shutil.rmtree(staging)
        raise
    _set_login(args.site_dir / "broker/lungta/passwd", name, password)
    replaced = folder.exists()
    if replaced:
        shutil.rmtree(folder)
    staging.rename(folder)
    with tarfile.open(bundle.with_suffix(".tmp"), "w:gz") as tar:
        tar.add(folder, arcname=name)
    bundle.with_suffix(".tmp").replace(bundle)
    bundle.chmod(0o600)
    emit({"gate": name, "replaced": replaced, "folder": str(folder), "bundle": str(bundle), "broker_passwd": str(args.site_dir / "broker/lungta/passwd"),
          "next": "copy the bundle's files to /etc/lungta on the gate; copy broker/lungta/passwd to the broker and reload mosquitto"})
