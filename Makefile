# p2pstack — see README.md
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint proto bench interop interop-js clean

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

interop: interop-js

interop-js: $(STAMP)
	bash interop/js/build.sh
	$(PYTHON) -m pytest -q -s -p no:cacheprovider interop/test_js.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
