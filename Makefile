# Shortcuts; every target is one documented command.
.PHONY: setup demo test test-fast lint format compile bench lock

setup:        ## install the pinned environment (requirements.lock) + teacherlm, editable
	bash scripts/setup.sh

demo: setup   ## README command 1: the main job end to end on the embedded default
	teacherlm demo

test: setup   ## README command 2 (what CI runs)
	bash scripts/ci-tools.sh && python -m pytest

test-fast:    ## unit tests only: no servers, no engines
	python -m pytest -m "not integration and not slow"

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

bench:        ## the benchmarks (each prints ratios measured side by side in one run)
	python benchmarks/eval_throughput.py --vllm

lock:         ## re-pin requirements.lock from the current environment
	bash scripts/lock.sh
