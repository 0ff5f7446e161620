# Two commands do all the set-up on a fresh machine:
#   make demo   venv + install + schema + demo organization + one create-backup flow run
#   make test   venv + install with test extras + the whole test suite
# Installs take every version from constraints.txt, so a fresh machine gets the set the tests
# passed with; `make lock` resolves it anew within pyproject.toml's bounds and rewrites it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints.txt

.PHONY: demo test install lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet --constraint $(CONSTRAINTS) -e '.[test]'

demo: install
	$(BIN)/labvault demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test,postgres]'
	.lock-venv/bin/python -m pip freeze --exclude-editable --all | grep -v -E '^(pip|setuptools|wheel)==' > $(CONSTRAINTS)
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) build *.egg-info
