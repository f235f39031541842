# The two commands of the quick start: `make demo` and `make test`. Both install what they need
# (scripts/install-deps.sh: Debian packages, .venv) and can be run again.
SHELL := /bin/bash
PY := .venv/bin/python
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build/collections
export ANSIBLE_NOCOLOR := 1
PYTEST_ARGS ?=

.PHONY: all deps demo test sanity units integration molecule test-fleet bench build clean

all: test

deps:
	@./scripts/install-deps.sh

demo: deps
	@./scripts/demo.sh

# Every stage runs even when an earlier one fails, so one run shows everything; the exit status is non-zero
# when any stage failed.
test: deps
	@failed=""; for stage in sanity units integration molecule; do \
	    echo "=== make $$stage"; $(MAKE) --no-print-directory $$stage || failed="$$failed $$stage"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test: FAILED stages:$$failed"; exit 1; fi; \
	echo "make test: all stages passed"

sanity: deps
	@./scripts/sanity.sh
	.venv/bin/ansible-lint --offline roles playbooks

# Under make, a skipped test fails (conftest.py): CI has root and every tool, so a skip would hide a gap.
# bench/tests: the benchmark harness's own tests (parsers, report, the shipped fronts each case runs).
units: deps
	DOCKERLESS_STRICT_SKIPS=1 $(PY) -m pytest tests/unit bench/tests -q -rs -p no:cacheprovider $(PYTEST_ARGS)

integration: deps
	DOCKERLESS_STRICT_SKIPS=1 $(PY) -m pytest tests/integration -q -rs -p no:cacheprovider $(PYTEST_ARGS)

# The molecule scenario `default` on a qemu VM (docs/molecule.md) is the last stage of `make test`; the
# three-VM `fleet` scenario is `make test-fleet`, outside `make test`.
molecule: deps
	DOCKERLESS_STRICT_SKIPS=1 ./scripts/vm/molecule.sh default

test-fleet: deps
	DOCKERLESS_STRICT_SKIPS=1 ./scripts/vm/molecule.sh fleet

# Benchmarks side by side with skopeo, umoci, runc, podman (about 15 minutes; writes docs/benchmarks.*).
bench: deps
	@./bench/bench.sh $(BENCH_ARGS)

build: deps
	.venv/bin/ansible-galaxy collection build --force --output-path .build/dist .

clean:
	rm -rf .build tests/output
