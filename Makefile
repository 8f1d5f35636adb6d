# Studio.Anime
#   make up     run the whole stack in the foreground (Ctrl-C stops it)
#   make test   every check: lint, types, import boundaries, images, tests
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV = $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
RUN = $(UV) run --frozen
# The packages' sources; mypy is run from the root so it reads the root config.
MYPY_TARGETS = $(wildcard libs/*/src services/*/src tools/*/src deploy/operator/src)
# images before pytest: tests/images starts them (and the build caches its layers).
CHECKS := lint typecheck boundaries images pytest

.PHONY: help bootstrap up down images gateway-config helm-lint helm-template compose-config $(CHECKS) test e2e faults faults-long bench clean

help:
	@echo "make up              run every service, the gateway and local S3 (http://127.0.0.1:$${STUDIO_PORT:-8080})"
	@echo "make down            stop a running stack and any private Postgres/NATS it left"
	@echo "make test            $(CHECKS)"
	@echo "make e2e             only the end-to-end tests (a private stack, Chromium); make test runs them too"
	@echo "make faults          the fault-injection tests (tests/faults; make test runs their short versions)"
	@echo "make faults-long     the same with the issues' outage lengths (NATS 5 minutes, S3 2 minutes; not in make test)"
	@echo "make bench           the benchmarks against their limits (slow; results in bench/README.md)"
	@echo "make images          build every image with the local Docker engine (stand-in bases without a registry)"
	@echo "make gateway-config  print the nginx config generated from the route table"
	@echo "make helm-lint       lint the chart and validate its manifests (offline, no helm binary)"
	@echo "make helm-template   print the chart's manifests (VALUES=deploy/helm/values-dev.yaml)"
	@echo "make compose-config  regenerate deploy/compose/nginx.conf for docker-compose.yml"
	@echo "make clean           stop the stack, remove .data and tool caches"

# System packages beyond uv, the environment and nginx, per goal: the worker of
# `make up` runs ffmpeg; the tests also drive Chromium.
up: BOOTSTRAP_PACKAGES = ffmpeg
test e2e faults faults-long bench: BOOTSTRAP_PACKAGES = ffmpeg chromium
bootstrap:
	@scripts/bootstrap.sh $(BOOTSTRAP_PACKAGES)

up: bootstrap
	$(RUN) studio-dev up

down:
	$(RUN) studio-dev down

# Every image (services, operator, player); bases are pulled when a registry
# answers, else built locally from Debian packages (tools/devstack/.../images.py).
images:
	$(RUN) studio-dev images

gateway-config:
	@$(RUN) studio-dev gateway-config

# The chart through Helm's library (helm-python-sdk): lint --strict, render the
# default, dev and production values, validate against Kubernetes' schemas.
# `make pytest` runs the same checks and more (deploy/tests).
helm-lint:
	$(RUN) python deploy/helm/render.py

VALUES ?= deploy/helm/values-dev.yaml
helm-template:
	@$(RUN) python deploy/helm/render.py --print -f $(VALUES)

compose-config:
	$(RUN) python deploy/compose/gateway.py > deploy/compose/nginx.conf

lint:
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck:
	$(RUN) mypy $(MYPY_TARGETS)

boundaries:
	$(RUN) lint-imports

# Exit code 5 means pytest collected nothing: a broken test path, never a pass.
pytest:
	@$(RUN) pytest; code=$$?; \
	if [ $$code -eq 5 ]; then echo "make pytest: no tests were collected" >&2; fi; \
	exit $$code

# The end-to-end tests alone: a private stack on shifted ports (tests/e2e/README.md),
# or the one at STUDIO_E2E_GATEWAY_URL.
e2e: bootstrap
	$(RUN) pytest -m e2e tests/e2e

# Dependencies taken away and brought back, each a private instance
# (tests/faults); `make test` runs them with short outages.
faults: bootstrap
	$(RUN) pytest tests/faults

faults-long: bootstrap
	STUDIO_FAULT_OUTAGE_SECONDS=300 STUDIO_FAULT_S3_OUTAGE_SECONDS=120 $(RUN) pytest --timeout=900 tests/faults

# Never part of `make test`: benchmarks print numbers, they do not pass or fail.
bench: bootstrap
	$(RUN) python bench/run.py

# Runs every check even after one fails, so one run shows all that is wrong.
test: bootstrap
	@failed=""; \
	for check in $(CHECKS); do \
	  echo "==> make $$check"; \
	  $(MAKE) --no-print-directory $$check || failed="$$failed $$check"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed" >&2; exit 1; fi

clean:
	-$(RUN) studio-dev down
	rm -rf .data .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +
