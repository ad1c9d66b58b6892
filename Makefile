# Everything a fresh machine needs, from python3 and make alone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-slow test-all clean

install: $(STAMP)

# Reinstall when the pins or the project metadata change; constraints.txt pins every package
# (torch==2.13.0 CPU among them) so a rerun on another day installs the same versions.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: a multirun over the three cells on the default synthetic task, logged to outputs/mlflow.db.
run: install
	$(BIN)/seqlab --multirun cell=rnn,lstm,gru

test: install
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: install
	$(BIN)/python -m pytest -m slow -q

test-all: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf outputs multirun .pytest_cache
