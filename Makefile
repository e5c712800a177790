# The two commands a new machine needs: `make serve` and `make test`. Both install first.
VENV ?= .venv
PORT ?= 8000

.PHONY: setup serve test lint bench image-test

setup:
	PONDER_VENV=$(VENV) scripts/setup.sh

serve: setup
	$(VENV)/bin/ponder serve --port $(PORT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# mypy cannot follow the editable install's folder mapping (ponder.server -> server/):
	@# a tree of links under build/ gives it the real import names (pyproject's mypy_path).
	@mkdir -p build/typing/ponder
	@for d in server strategies verifiers core evaluation; do ln -sfn ../../../$$d build/typing/ponder/$$d; done
	@ln -sfn ../../client/ponder_client build/typing/ponder_client
	$(VENV)/bin/mypy
	PYTHONPATH=build/typing $(VENV)/bin/lint-imports --no-logo

test: lint
	$(VENV)/bin/python -m pytest -q -ra

bench: setup
	$(VENV)/bin/python bench/overhead.py

# Builds the CPU image (deploy/docker/Dockerfile.cpu) on a Debian base made with debootstrap, and
# checks that `ponder serve` inside it answers a chat request. Needs root; about 5 minutes from
# nothing on a 2-core machine (40 s with the build cached); not part of `make test`.
image-test:
	PONDER_IMAGE_TOOLS=1 PONDER_VENV=$(VENV) scripts/setup.sh
	scripts/image-test.sh
