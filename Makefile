# The two commands of the README are `docker compose up --build` (the demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TAG ?= dev
SERVICES := git-sync redis-ambassador metrics-adapter

.PHONY: venv images lint test test-fast demo clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

images:
	@for svc in $(SERVICES); do \
	  echo "building podpatterns/$$svc:$(TAG)"; \
	  docker build -q -f images/$$svc.Dockerfile -t podpatterns/$$svc:$(TAG) . >/dev/null || exit 1; \
	done

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The whole suite: lint, images, unit + integration + container tests.
test: venv lint images
	$(VENV)/bin/pytest

# Without images and container tests, for a quick loop while developing.
test-fast: venv lint
	$(VENV)/bin/pytest tests/unit tests/integration

demo:
	docker compose up --build

clean:
	rm -rf $(VENV) build dist *.egg-info
