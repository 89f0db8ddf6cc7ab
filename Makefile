# Quick start: `make demo` and `make test` each install everything they need
# on a fresh Debian 12 machine (apt packages, a venv, the package with its
# test extras), then run.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# mosquitto: the real broker the tests and demo start; libzbar0: pyzbar's decoder;
# build-essential, python3-dev, linux-libc-dev: evdev builds from source;
# postgresql: the scaled-out hub's store, started by its tests.
# iproute2, faketime: the fault suite's network namespaces and stepped gate clocks (tests/faults).
APT_PACKAGES := mosquitto mosquitto-clients libzbar0 python3-venv python3-dev build-essential linux-libc-dev sqlite3 iproute2 faketime
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all sysdeps venv test demo bench soak clean

all: test

sysdeps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing system packages:" $$missing; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: sysdeps $(VENV)/.installed

test: venv
	$(PY) -m pytest -q

demo: venv
	$(PY) -m lungta.demo

bench: venv
	$(PY) -m bench

# Fault cycles on a live site (root: network namespaces); prints cycles, events, violations.
CYCLES ?= 200
SEED ?= 11
soak: venv
	$(PY) -m tests.faults.soak --cycles $(CYCLES) --seed $(SEED)

clean:
	rm -rf $(VENV) demo-out *.egg-info .pytest_cache .hypothesis
