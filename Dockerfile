# The image docker-compose.yml runs: synth and its runtime dependencies from the hashed lock file.
# Two stages: compilers build llama-cpp-python in the first; the image keeps only the virtualenv and the source,
# runs as a non-root user, and holds no compiler, test runner, linter or type checker.

FROM python:3.11-slim AS build
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake bubblewrap \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
# requirements-runtime.txt: requirements.txt's versions and hashes without the dev extra (make lock writes both)
COPY requirements-runtime.txt ./
# torch is the CPU build (+cpu): PyTorch's CPU index serves the same wheel the lock's hash names.
RUN pip install --require-hashes --extra-index-url https://download.pytorch.org/whl/cpu -r requirements-runtime.txt
COPY pyproject.toml README.md ./
COPY synth synth
COPY verifiers verifiers
COPY workers workers
RUN pip install --no-deps --no-build-isolation -e .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1
# bubblewrap and libseccomp2: the code_exec verifier's sandbox (verify workers need them at run time)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap libseccomp2 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin synth
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build /app /app
COPY prompts prompts
COPY configs configs
RUN mkdir -p /app/runs && chown synth:synth /app/runs
USER synth
CMD ["synth", "--help"]
