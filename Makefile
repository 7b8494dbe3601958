# Two entry points a new user needs; both set up .venv themselves and are safe to run twice.
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: setup test test-cpus lint demo clean

setup:
	bash scripts/setup.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q --durations=40

# The tests that train or compare model outputs, run as other x86-64 CPUs run them: PyTorch's
# kernels (ATen, oneDNN, MKL) capped at AVX2, then at SSE4 (no AVX at all), then native on one
# thread. A test that passes only on the CPU it was written on fails here.
CPU_TESTS ?= tests/unit/lsmodel tests/unit/bench tests/unit/pipelines/test_mapping_predict.py \
	tests/unit/pipelines/test_terrain_bundles.py tests/integration
AVX2 := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
SSE4 := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2

test-cpus: setup
	$(AVX2) $(BIN)/python -m pytest -q $(CPU_TESTS)
	$(SSE4) $(BIN)/python -m pytest -q $(CPU_TESTS)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(CPU_TESTS)

demo: setup
	bash scripts/demo.sh $(DEMO_OUT)

clean:
	rm -rf $(DEMO_OUT) .pytest_cache .ruff_cache
