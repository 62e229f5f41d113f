# docteur — make and read read-only disk images of Git trees.
# `make demo` and `make test` work on a fresh Debian machine (as root, or with sudo available).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBS   := $(shell grep -v '^\#' .ci/debian-packages.txt)

.PHONY: all deps venv demo test lint bench fuzz clean

all: venv

# Debian packages: installed only when one is missing, so repeated runs stay fast.
deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

# The built-in example: pack examples/site and this repository, verify, list and read them back.
demo: deps venv
	mkdir -p demo
	$(VENV)/bin/docteur-make -q examples/site demo/site.img -d 2020-10-10T08:00:00+00:00
	$(VENV)/bin/docteur-verify demo/site.img
	$(VENV)/bin/docteur-ls -lR demo/site.img
	$(VENV)/bin/docteur-cat demo/site.img README.md
	$(VENV)/bin/docteur-make -q . demo/self.img
	$(VENV)/bin/docteur-verify demo/self.img
	@echo "demo: images in demo/ — try: $(VENV)/bin/docteur-ls demo/self.img"

test: deps venv lint
	$(PY) -m pytest -q

lint: venv
	$(VENV)/bin/ruff check docteur tests bench unikernel fuzz
	$(VENV)/bin/ruff format --check docteur tests bench unikernel fuzz

bench: deps venv
	$(PY) -m bench

# Hostile input at full size (issues 6, 12, 15): 10,000 mutations of each image kind, 10,000 update
# mutations, a 9P storm, 10,000 hostile HTTP cases, the atheris targets of fuzz/.
fuzz: deps venv
	$(PY) -c 'import atheris' 2>/dev/null || $(PY) -m pip install -q -e '.[fuzz]'
	$(PY) -m fuzz

clean:
	rm -rf $(VENV) demo build *.egg-info bench/work unikernel/build
