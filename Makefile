# The two commands of the README are `docker compose up --build` (the demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TAG ?= dev
SERVICES := git-sync redis-ambassador metrics-adapter
# checkov has its own venv: its large, pinned dependency tree must not steer the project's.
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
# kubectl's built-in kustomize where kubectl is installed, else the standalone kustomize.
KUSTOMIZE ?= $(shell command -v kubectl >/dev/null 2>&1 && echo "kubectl kustomize" || echo "kustomize build")

.PHONY: venv images lint test test-fast demo clean manifests-check

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
test: venv lint images $(CHECKOV_VENV)/bin/checkov
	$(VENV)/bin/pytest

# Without images and container tests, for a quick loop while developing.
test-fast: venv lint
	$(VENV)/bin/pytest tests/unit tests/integration

# Render every kustomization under manifests/ (kubectl kustomize) and validate each document with
# kubernetes-validate --strict for every supported Kubernetes version; run checkov over the
# overlays (what gets applied; its exceptions are justified in manifests/.checkov.yaml); then the
# offline checks of tests/integration/test_manifests.py (hardening rules, wiring, checkov again).
K8S_VERSIONS ?= 1.29.0 1.30.0 1.31.0 1.32.0 1.33.0

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check checkov==$(CHECKOV_VERSION)

manifests-check: venv $(CHECKOV_VENV)/bin/checkov
	@set -e; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; mkdir "$$out/overlays"; \
	for k in $$(find manifests -name kustomization.yaml -exec grep -L '^kind: Component' {} + | xargs -n1 dirname | sort); do \
	  f="$$out/$$(echo $$k | tr / _).yaml"; \
	  $(KUSTOMIZE) "$$k" > "$$f"; \
	  for v in $(K8S_VERSIONS); do \
	    $(VENV)/bin/kubernetes-validate --strict --quiet --no-warn -k $$v "$$f"; \
	  done; \
	  echo "ok  $$k  (Kubernetes $(K8S_VERSIONS))"; \
	  case $$k in manifests/overlays/*) cp "$$f" "$$out/overlays/";; esac; \
	done; \
	$(CHECKOV_VENV)/bin/checkov --config-file manifests/.checkov.yaml -d "$$out/overlays"
	$(VENV)/bin/pytest -q tests/integration/test_manifests.py

demo:
	docker compose up --build

clean:
	rm -rf $(VENV) build dist *.egg-info
