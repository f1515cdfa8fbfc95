# The two fresh-machine commands of the README:
#   make demo   install iss into .venv and run the main job on the embedded default (no servers)
#   make test   run the static checks (make check: ruff, mypy, import-linter), install what the tests
#               need (Debian dnf/createrepo_c/rpm, Pulp via deploy/) and run the tests
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: install demo check test-deps test bench clean

$(BIN)/iss: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,pulp,dev]'
	touch $(BIN)/iss

install: $(BIN)/iss

demo: install
	$(BIN)/iss demo

check: install
	VENV=$(VENV) bash scripts/check.sh

test-deps: install
	bash scripts/install-test-deps.sh
	bash scripts/start-services.sh

# The checks first: they fail before the Debian packages and the Pulp servers are installed.
test: check test-deps
	VENV=$(VENV) bash scripts/test.sh

bench: install
	$(BIN)/python bench/export_import.py

clean:
	rm -rf $(VENV) build *.egg-info
