#!/bin/sh
# Lungta on a gate or hub box: install, upgrade or uninstall. docs/install.md explains each step.
#
#   deploy/install.sh install   [gate|hub|both]   # venv, units, /etc/lungta examples, state dirs, user
#   deploy/install.sh upgrade   [gate|hub|both]   # new code into the venv; configs and state untouched
#   deploy/install.sh uninstall [gate|hub|both]   # units and venv removed; configs and state kept
#                                                 # (PURGE=1 removes them and the user too)
#
# Where things go (override any for a scratch install; tests/test_install.py does):
#   PREFIX=/opt/lungta           the venv; the units run $PREFIX/bin/lungta
#   SYSCONFDIR=/etc/lungta       gate.toml / hub.toml (examples beside them as *.example)
#   STATEDIR=/var/lib/lungta     gate/ and hub/ state, owned by the service user
#   UNITDIR=/etc/systemd/system  lungta-gate.service / lungta-hub.service
#   BINDIR=/usr/local/bin        a `lungta` link to $PREFIX/bin/lungta, so it is on PATH
#   LUNGTA_USER=lungta           the system user the units run as
#   SOURCE=<this checkout>       what pip installs: this source tree or a wheel file
#   SYSTEM_SITE_PACKAGES=1       the venv sees Debian's python3-nacl, python3-numpy,
#                                python3-opencv (32-bit ARM: no wheels on PyPI)
#   PIP_ARGS="..."               extra pip options (e.g. --no-index --find-links DIR offline)
#   PYTHON=python3               the interpreter the venv is made from (3.11 or newer)
set -eu

ACTION=${1:-install}
ROLE=${2:-both}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/opt/lungta}
SYSCONFDIR=${SYSCONFDIR:-/etc/lungta}
STATEDIR=${STATEDIR:-/var/lib/lungta}
UNITDIR=${UNITDIR:-/etc/systemd/system}
BINDIR=${BINDIR:-/usr/local/bin}
LUNGTA_USER=${LUNGTA_USER:-lungta}
SOURCE=${SOURCE:-$HERE}
SYSTEM_SITE_PACKAGES=${SYSTEM_SITE_PACKAGES:-0}
PIP_ARGS=${PIP_ARGS:-}
PYTHON=${PYTHON:-python3}
PURGE=${PURGE:-0}

say() { printf 'lungta-install: %s\n' "$*"; }
die() { printf 'lungta-install: error: %s\n' "$*" >&2; exit 2; }

case $ROLE in
    gate) UNITS="lungta-gate"; ROLES="gate" ;;
    hub) UNITS="lungta-hub"; ROLES="hub" ;;
    both) UNITS="lungta-gate lungta-hub"; ROLES="gate hub" ;;
    *) die "role '$ROLE': expected gate, hub or both" ;;
esac

is_root() { [ "$(id -u)" -eq 0 ]; }
# systemctl only for the real unit directory on a box booted with systemd.
use_systemctl() { [ "$UNITDIR" = /etc/systemd/system ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

make_user() {
    if ! is_root; then say "not root: no system user made (the units run as $LUNGTA_USER)"; return; fi
    if id "$LUNGTA_USER" >/dev/null 2>&1; then return; fi
    useradd --system --home-dir "$STATEDIR" --no-create-home --shell /usr/sbin/nologin "$LUNGTA_USER"
    # Remembered, so that PURGE=1 removes only a user this script made, never one that was there.
    install -d -m 0750 "$SYSCONFDIR"
    printf '%s\n' "$LUNGTA_USER" > "$SYSCONFDIR/.user-made-by-install"
    say "system user $LUNGTA_USER made"
    for group in dialout input video gpio; do
        getent group "$group" >/dev/null || groupadd --system "$group"
    done
}

make_venv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than Python 3.11"
    if [ ! -x "$PREFIX/bin/python" ]; then
        if [ "$SYSTEM_SITE_PACKAGES" = 1 ]; then
            "$PYTHON" -m venv --system-site-packages "$PREFIX"
        else
            "$PYTHON" -m venv "$PREFIX"
        fi
    fi
    # shellcheck disable=SC2086  # PIP_ARGS is a list of options
    "$PREFIX/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS --upgrade "$SOURCE"
}

install_docs() {
    docs="$PREFIX/share/doc/lungta"
    install -d -m 0755 "$docs"
    for file in "$HERE"/README.md "$HERE"/docs/*.md; do
        [ -f "$file" ] && install -m 0644 "$file" "$docs/"
    done
    [ -f "$HERE/deploy/README.md" ] && install -m 0644 "$HERE/deploy/README.md" "$docs/deploy.md"
    # What `lungta site init` and `lungta hub add-gate` start from (lungta/site_cli.py: shared_file).
    share="$PREFIX/share/lungta"
    install -d -m 0755 "$share/systemd" "$share/deploy/mosquitto"
    install -m 0644 "$HERE"/systemd/*.toml "$share/systemd/"
    install -m 0644 "$HERE"/deploy/mosquitto/* "$share/deploy/mosquitto/"
}

install_configs() {
    install -d -m 0750 "$SYSCONFDIR"
    for role in $ROLES; do
        install -m 0640 "$HERE/systemd/$role.toml" "$SYSCONFDIR/$role.toml.example"
        if [ ! -e "$SYSCONFDIR/$role.toml" ]; then
            install -m 0640 "$HERE/systemd/$role.toml" "$SYSCONFDIR/$role.toml"
            say "$SYSCONFDIR/$role.toml: example installed; edit it (or copy in the one 'lungta site init' / 'lungta hub add-gate' made)"
        fi
    done
    if is_root && id "$LUNGTA_USER" >/dev/null 2>&1; then chgrp -R "$(id -gn "$LUNGTA_USER")" "$SYSCONFDIR"; fi
}

install_state() {
    for role in $ROLES; do
        install -d -m 0700 "$STATEDIR/$role"
        if is_root && id "$LUNGTA_USER" >/dev/null 2>&1; then chown "$LUNGTA_USER:$(id -gn "$LUNGTA_USER")" "$STATEDIR/$role"; fi
    done
}

install_units() {
    group=$(id -gn "$LUNGTA_USER" 2>/dev/null || echo "$LUNGTA_USER")
    install -d -m 0755 "$UNITDIR"
    for unit in $UNITS; do
        sed -e "s|/opt/lungta|$PREFIX|g" -e "s|/etc/lungta|$SYSCONFDIR|g" -e "s|/var/lib/lungta|$STATEDIR|g" \
            -e "s|^User=lungta$|User=$LUNGTA_USER|" -e "s|^Group=lungta$|Group=$group|" \
            "$HERE/systemd/$unit.service" > "$UNITDIR/$unit.service.tmp"
        chmod 0644 "$UNITDIR/$unit.service.tmp"
        mv "$UNITDIR/$unit.service.tmp" "$UNITDIR/$unit.service"
    done
    if use_systemctl; then systemctl daemon-reload; fi
}

link_command() {
    install -d -m 0755 "$BINDIR"
    ln -sfn "$PREFIX/bin/lungta" "$BINDIR/lungta"
}

check_installed() {
    version=$("$PREFIX/bin/lungta" --version) || die "$PREFIX/bin/lungta does not run"
    say "installed: $version in $PREFIX"
}

case $ACTION in
    install)
        make_user
        make_venv
        install_docs
        install_configs
        install_state
        install_units
        link_command
        check_installed
        say "next: edit $SYSCONFDIR/*.toml, check with: $PREFIX/bin/lungta gate run --config $SYSCONFDIR/gate.toml --check"
        say "then: systemctl enable --now $UNITS"
        ;;
    upgrade)
        [ -x "$PREFIX/bin/lungta" ] || die "$PREFIX: no Lungta installed here; run: $0 install $ROLE"
        make_venv
        install_docs
        install_configs
        install_units
        check_installed
        if use_systemctl; then
            for unit in $UNITS; do systemctl try-restart "$unit.service"; done
            say "running services restarted"
        fi
        ;;
    uninstall)
        for unit in $UNITS; do
            if use_systemctl; then systemctl disable --now "$unit.service" 2>/dev/null || true; fi
            rm -f "$UNITDIR/$unit.service"
        done
        if use_systemctl; then systemctl daemon-reload; fi
        if [ "$(readlink "$BINDIR/lungta" 2>/dev/null)" = "$PREFIX/bin/lungta" ]; then rm -f "$BINDIR/lungta"; fi
        rm -rf "$PREFIX"
        if [ "$PURGE" = 1 ]; then
            made_user=$(cat "$SYSCONFDIR/.user-made-by-install" 2>/dev/null || true)
            rm -rf "$SYSCONFDIR" "$STATEDIR"
            if [ "$made_user" = "$LUNGTA_USER" ] && is_root && id "$LUNGTA_USER" >/dev/null 2>&1; then
                userdel "$LUNGTA_USER"
                say "removed user $LUNGTA_USER"
            fi
            say "removed $PREFIX, $SYSCONFDIR and $STATEDIR"
        else
            say "removed $PREFIX and the units; kept $SYSCONFDIR and $STATEDIR (PURGE=1 removes them)"
        fi
        ;;
    *) die "action '$ACTION': expected install, upgrade or uninstall" ;;
esac
