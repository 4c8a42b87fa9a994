# The two set-up commands of the README: `make demo` and `make test`.
# Each creates the virtual environment it needs (.venv) and installs the project into it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint venv bench clean docs docs-build

# the CLI, the bundled service (`tradewise[service]`: the local stack and the tests run it) and the
# test and docs tools; scripts/venv.sh says what it is doing while it installs
$(STAMP): pyproject.toml
	PYTHON=$(PYTHON) VENV=$(VENV) EXTRAS=dev,service scripts/venv.sh
	touch $(STAMP)

venv: $(STAMP)

## the main job on its embedded default: no cluster, no Docker
## (DEMO_PORT=8100 picks the API's port; by default 8000, or a free one when 8000 is taken)
demo: $(STAMP)
	TW=$(BIN)/tradewise scripts/demo.sh

## the whole test suite, with the linters
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## the documentation site (MkDocs, Material theme) from docs/, served on 127.0.0.1 only
DOCS_PORT ?= 8001
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

## build it as CI does (tests/test_docs.py): broken links, missing pages and warnings fail it
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(or $(SITE_DIR),site)

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build site
