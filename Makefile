# Two commands for a new user:  `make run` (set up + main job)  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/moe-sim: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/moe-sim

setup: $(BIN)/moe-sim

run: setup
	$(BIN)/moe-sim run --model mixtral-8x22b --hardware h100-sxm --devices 256 --tp 2 --pp 4 --ep 8 \
		--mbs 1 --gbs 512 --seq 4096 --recompute selective

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_routing.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_sweep.py

# every study under experiments/: run.py writes results.csv, plot.py draws from it (see each README)
STUDIES = moge_vs_moe a2a_flat_vs_hierarchical ultra_moe_config_search npu_vs_gpu zero_sharding validation

experiments: setup
	@for s in $(STUDIES); do \
		echo "== $$s"; \
		$(BIN)/python experiments/$$s/run.py && $(BIN)/python experiments/$$s/plot.py || exit 1; \
	done

.PHONY: setup run test bench experiments
