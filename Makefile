# p2pstack — see README.md
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint proto bench interop interop-matrix interop-quick interop-js interop-deps clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PYTHON) -m p2pstack.demo

test: $(STAMP)
	$(PYTHON) -m pytest -q -p no:cacheprovider -m 'not slow' tests

test-all: $(STAMP)
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check p2pstack tests bench interop
	$(BIN)/ruff format --check p2pstack tests bench interop
	$(BIN)/mypy

proto: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(PYTHON) -m grpc_tools.protoc -Iproto \
		--python_out=p2pstack/pb --mypy_out=p2pstack/pb proto/*.proto

bench: $(STAMP)
	$(PYTHON) -m bench

# The interop matrix against go, rust, js and py-libp2p peers (interop/README.md), then the
# js suite's finer checks. Builds are cached under ~/.cache/p2pstack/interop.
interop: interop-matrix interop-js

interop-matrix: $(STAMP) interop-deps
	$(PYTHON) interop/run.py

interop-quick: $(STAMP) interop-deps
	$(PYTHON) interop/run.py --quick

# From Debian: redis-server (the runner starts one on a private loopback port) and
# libgmp-dev (py-libp2p's fastecdsa compiles against it). Go, cargo and npm come with the
# machine; the peers' own dependencies come from their registries (interop/*/build.sh).
interop-deps:
	@command -v redis-server >/dev/null && dpkg -s libgmp-dev >/dev/null 2>&1 || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server libgmp-dev; }

interop-js: $(STAMP)
	bash interop/js/build.sh
	$(PYTHON) -m pytest -q -s -p no:cacheprovider interop/test_js.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
