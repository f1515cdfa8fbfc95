# The two fresh-machine commands of the README:
#   make demo   install iss into .venv and run the main job on the embedded default (no servers)
#   make test   install what the tests need (Debian dnf/createrepo_c/rpm, Pulp via deploy/) and run them
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin

.PHONY: install demo test-deps test bench clean

$(BIN)/iss: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,pulp]'
	touch $(BIN)/iss

install: $(BIN)/iss

demo: install
	$(BIN)/iss demo

test-deps: install
	bash scripts/install-test-deps.sh
	bash scripts/start-services.sh

test: test-deps
	bash scripts/test.sh

bench: install
	$(BIN)/python bench/export_import.py

clean:
	rm -rf $(VENV) build *.egg-info
