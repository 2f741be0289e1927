# syntax=docker/dockerfile:1.7
#
# modstream worker images. Two final targets, one Dockerfile:
#
#   docker build --target cpu -t modstream:0.1.0 .        # python:3.11-slim + onnxruntime
#   docker build --target gpu -t modstream:0.1.0-gpu .    # CUDA 12 + cuDNN 9 runtime + onnxruntime-gpu
#
# Each flavour installs into a virtualenv in a build stage; the final stage
# copies only that virtualenv onto a clean base, so no pip cache, sources or
# build tools ship. The default model is package data of `classifiers`
# (classifiers/models/modstream-minilm/), so installing the package bakes
# it in; a build without it fails at the check below instead of shipping an
# image that cannot score.
#
# onnxruntime and onnxruntime-gpu install the same `onnxruntime` module and
# must never sit side by side: each flavour installs exactly one extra and
# the build fails if the other distribution slipped in.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# onnxruntime-gpu from PyPI is built against CUDA 12 and cuDNN 9.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---------------------------------------------------------------- sources
FROM ${PYTHON_IMAGE} AS source
WORKDIR /src
COPY pyproject.toml README.md ./
COPY classifiers ./classifiers
COPY stream ./stream
RUN test -f classifiers/models/modstream-minilm/model_card.json \
    && test -f classifiers/models/modstream-minilm/tokenizer.json \
    || { echo "the default model is missing: run 'modstream train' and 'modstream export' first" >&2; exit 1; }

# -------------------------------------------------------------- CPU build
FROM ${PYTHON_IMAGE} AS cpu-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/modstream
ENV PATH=/opt/modstream/bin:$PATH
COPY --from=source /src /src
RUN pip install --no-cache-dir "/src[cpu]" \
    && python -c "import importlib.metadata as m, sys; \
names = {d.metadata['Name'].lower() for d in m.distributions()}; \
sys.exit('onnxruntime-gpu must not be in the CPU image' if 'onnxruntime-gpu' in names else 0)" \
    && python -c "from stream.settings import DEFAULT_MODEL_DIR as d; assert (d / 'model_card.json').is_file(), d"

# -------------------------------------------------------------- GPU base
FROM ${CUDA_IMAGE} AS gpu-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
# Ubuntu replaces python3.11 in jammy-updates on every security fix and
# drops the old build from the archive, so an exact `=version` pin breaks
# the build within weeks; the CUDA base image tag is what pins this stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# -------------------------------------------------------------- GPU build
FROM gpu-base AS gpu-build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3.11 -m venv /opt/modstream
ENV PATH=/opt/modstream/bin:$PATH
COPY --from=source /src /src
RUN pip install --no-cache-dir "/src[gpu]" \
    && python -c "import importlib.metadata as m, sys; \
names = {d.metadata['Name'].lower() for d in m.distributions()}; \
sys.exit('onnxruntime (CPU) must not be in the GPU image' if 'onnxruntime' in names else 0)" \
    && python -c "from stream.settings import DEFAULT_MODEL_DIR as d; assert (d / 'model_card.json').is_file(), d"

# -------------------------------------------------------------- GPU final
FROM gpu-base AS gpu
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="modstream" \
      org.opencontainers.image.description="Kafka-native streaming moderation worker (CUDA)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/modstream/modstream"
RUN groupadd --system --gid 10001 modstream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin modstream
COPY --from=gpu-build /opt/modstream /opt/modstream
ENV PATH=/opt/modstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MODSTREAM_HTTP_HOST=0.0.0.0 \
    MODSTREAM_HTTP_PORT=8080 \
    MODSTREAM_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MODSTREAM_HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["modstream"]
CMD ["worker"]

# -------------------------------------------------------------- CPU final
# Last stage, so a plain `docker build .` gives the CPU image.
FROM ${PYTHON_IMAGE} AS cpu
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="modstream" \
      org.opencontainers.image.description="Kafka-native streaming moderation worker (CPU)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/modstream/modstream"
RUN groupadd --system --gid 10001 modstream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin modstream
COPY --from=cpu-build /opt/modstream /opt/modstream
# HOME=/tmp: the root filesystem is read-only in Kubernetes; /tmp is an emptyDir.
ENV PATH=/opt/modstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MODSTREAM_HTTP_HOST=0.0.0.0 \
    MODSTREAM_HTTP_PORT=8080 \
    MODSTREAM_PROVIDERS=CPUExecutionProvider
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# No curl in the image: Python's urllib does the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MODSTREAM_HTTP_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["modstream"]
CMD ["worker"]
