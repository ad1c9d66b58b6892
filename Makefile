# Everything a fresh machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run lint test test-fast bench-test clean

install: $(STAMP)

# Reinstall when the pins or the project metadata change; constraints.txt pins every package
# (torch==2.13.0 CPU among them) so a rerun on another day installs the same versions. The editable
# install puts the checkout on sys.path (compat mode) so Hydra's plugin scan, which lists the
# hydra_plugins namespace with pkgutil, finds seqlab's own plugins there.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

# The main job: a multirun over the three cells on the default synthetic task, logged to outputs/mlflow.db.
run: install
	$(BIN)/seqlab --multirun cell=rnn,lstm,gru

# The lint tools' settings live in pyproject.toml ([tool.ruff], [tool.mypy]), their versions in constraints.txt.
lint: install
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy seqlab

# The README's second command and what .ci/run runs: lint, then every test but the benchmarks.
test: lint
	$(BIN)/python -m pytest -q

# The inner loop: unit and contract tests, without the integration tests (an MLflow store, a
# subprocess or a server; pyproject.toml's markers and tests/conftest.py say which those are).
test-fast: install
	$(BIN)/python -m pytest -q -m "not integration"

# The benchmarks' own tests: short runs of each benchmark, kept out of `make test`.
bench-test: install
	$(BIN)/python -m pytest benchmarks/tests -q

clean:
	rm -rf outputs multirun .pytest_cache

# A tracking stack on this machine: PostgreSQL and an MLflow server on it, on 127.0.0.1, data under
# outputs/tracking-stack; prints the tracking.uri to use (docs/scale-out.md). server-stop ends both by pid.
.PHONY: server server-stop
server: install
	$(BIN)/python -m seqlab.tracking.stack start

server-stop:
	$(BIN)/python -m seqlab.tracking.stack stop
