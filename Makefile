# netboot: `make demo` sets up and runs the main job; `make test` sets up and runs every test.
SHELL := /bin/bash
# Debian's python3: serve's network part runs the venv as the netboot user, who must be able
# to run its interpreter (a pyenv one under /root is out of its reach).
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup debs build-deps user venv tftproot deb demo test test-fast lint bench clean

setup: debs build-deps user venv tftproot

debs:
	@scripts/install-debs.sh

# what `make deb` builds with (debian/control's Build-Depends; tests/test_deb.py builds it)
build-deps:
	@scripts/install-build-deps.sh

user:
	@scripts/add-user.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	scripts/link-system-modules.sh $(VENV) rados rbd
	touch $@

# Debian's boot loaders into tftproot/, with MANIFEST.json (idempotent).
tftproot: venv
	@$(BIN)/python -m netboot.boot.loaders tftproot

# netboot's Debian package into dist/ (README "As a Debian package")
deb: build-deps
	@scripts/build-deb.sh dist

demo: setup
	@scripts/demo.sh

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest tests

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
