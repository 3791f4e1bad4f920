# p2pstack — see README.md
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTHON := $(BIN)/python

.PHONY: install run test test-all lint proto bench interop interop-js clean

$(PYTHON):
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(PYTHON)
	$(BIN)/pip install -q -e '.[dev]'

run: $(PYTHON)
	$(PYTHON) -m p2pstack.demo

test: $(PYTHON)
	$(PYTHON) -m pytest -q -x -m 'not slow'

test-all: $(PYTHON)
	$(PYTHON) -m pytest -q

lint: $(PYTHON)
	$(BIN)/ruff check p2pstack tests bench interop
	$(BIN)/ruff format --check p2pstack tests bench interop
	$(BIN)/mypy

proto: $(PYTHON)
	$(PYTHON) -m grpc_tools.protoc -Iproto --python_out=p2pstack/pb --mypy_out=p2pstack/pb proto/*.proto

bench: $(PYTHON)
	$(PYTHON) -m bench

interop: interop-js

interop-js: $(PYTHON)
	bash interop/js/build.sh
	$(PYTHON) -m pytest -q interop/test_js.py

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
