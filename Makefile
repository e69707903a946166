# One place for every routine command. `make install` is the README's setup step.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# llama.cpp's default native build crashes on these machines (AMX kernels): build portable AVX2.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
# litellm fetches its cost map from the network at import unless told not to.
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1

SYSTEM_DEPS := redis-server:redis-server bwrap:bubblewrap cmake:cmake chromium:chromium

.PHONY: system-deps install lock lint typecheck test test-fast bench demo clean

system-deps:  ## Debian packages the tests and verifiers need (Redis, the code sandbox, the browser test), when missing
	@need=""; for pair in $(SYSTEM_DEPS); do command -v $${pair%%:*} >/dev/null || need="$$need $${pair#*:}"; done; \
	ldconfig -p | grep -q libseccomp.so.2 || need="$$need libseccomp2"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need; \
	  else echo "missing system packages; install them with: sudo apt-get install$$need"; exit 1; fi; \
	fi

install: system-deps  ## system packages, venv, every dependency from the hashed lock file, synth itself (editable)
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --require-hashes -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

# torch: constraints.txt pins the CPU wheel in /opt/wheels (uv doesn't read pip's find-links; PyPI's is CUDA).
lock:  ## re-resolve requirements.txt from pyproject.toml (needs uv); requirements-runtime.txt: the same pins, no dev extra
	uv pip compile pyproject.toml --extra dev --extra local --generate-hashes --python-version 3.11 \
		--find-links /opt/wheels --emit-find-links -c constraints.txt -o requirements.txt
	! grep -Ei '^(nvidia|triton|cuda)' requirements.txt  # a CUDA torch crept in
	uv pip compile pyproject.toml --extra local --generate-hashes --python-version 3.11 \
		--find-links /opt/wheels --emit-find-links -c constraints.txt -c requirements.txt -o requirements-runtime.txt

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

test:  ## the whole suite, slow tests included (what CI runs)
	$(BIN)/pytest -q

test-fast:
	$(BIN)/pytest -q -m "not slow"

bench:
	$(PY) bench/throughput.py
	$(PY) bench/distributed.py
	$(PY) bench/chunking.py
	$(PY) bench/local_model.py
	$(PY) bench/sandbox.py
	$(PY) bench/verifiers.py
	$(PY) bench/finalize.py
	$(PY) bench/big_input.py
	$(PY) bench/api.py
	$(PY) bench/export.py

demo:  ## the main job: offline, on the bundled local model
	$(BIN)/synth run configs/quickstart.yaml

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
