# The image docker-compose.yml runs: synth with every dependency from the hashed lock file.
FROM python:3.11-slim
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake bubblewrap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN pip install --require-hashes -r requirements.txt
COPY synth synth
COPY verifiers verifiers
COPY workers workers
COPY prompts prompts
COPY configs configs
RUN pip install --no-deps --no-build-isolation -e .
