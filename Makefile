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
# chromium: the browser the console dashboard test drives (Playwright, system browser);
# fonts-tibetan-machine: Tibetan glyphs for its screenshots.
# iproute2, faketime: the fault suite's network namespaces and stepped gate clocks (tests/faults).
APT_PACKAGES := mosquitto mosquitto-clients libzbar0 python3-venv python3-dev build-essential linux-libc-dev sqlite3 chromium fonts-tibetan-machine iproute2 faketime
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all sysdeps venv test demo bench install fuzz soak clean

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
	$(PY) -m testkit.demo

bench: venv
	$(PY) -m bench

# Put Lungta on this box as a gate and hub (docs/install.md): ROLE=gate or ROLE=hub for one.
install:
	$(SUDO) deploy/install.sh install $(or $(ROLE),both)
# Long fuzzing runs (docs/security.md, "Fuzzing"): every harness in fuzz/ under atheris,
# FUZZ_RUNS inputs each; the corpus grows in .fuzz/<harness> from run to run.
FUZZ_RUNS ?= 1000000
# Each harness's SQLite and revocation files go in FUZZ_TMP/fuzz-<harness>, removed after (a tmpfs saves the fsyncs).
FUZZ_TMP ?= $(CURDIR)/.fuzz
FUZZ_HARNESSES := ticket_text cose_bytes signed_claims hub_inbound gate_inbox trust_list
fuzz: venv
	@for h in $(FUZZ_HARNESSES); do \
	  tmp=$(FUZZ_TMP)/fuzz-$$h; mkdir -p .fuzz $$tmp; FUZZ_TMP=$$tmp $(PY) -m fuzz.$$h -runs=$(FUZZ_RUNS) .fuzz/$$h > .fuzz/$$h.log 2>&1; \
	  status=$$?; rm -rf $$tmp; grep -a -E '^(fuzz |Done |stat::(number_of_executed_units|average_exec_per_sec))' .fuzz/$$h.log; \
	  [ $$status -eq 0 ] || { tail -40 .fuzz/$$h.log; echo "make fuzz: $$h found a crash (see .fuzz/$$h.log; input saved as crash-*)"; exit 1; }; \
	done

# Fault cycles on a live site (root: network namespaces); prints cycles, events, violations.
CYCLES ?= 200
SEED ?= 11
soak: venv
	$(PY) -m testkit.faults.soak --cycles $(CYCLES) --seed $(SEED)

clean:
	rm -rf $(VENV) demo-out *.egg-info .pytest_cache .hypothesis .fuzz
