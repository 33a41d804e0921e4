# One image for every muzero service; the command picks the service:
#   docker run --rm muzero:0.1.0 serve replay|learner|actor|reanalyze [OPTIONS]
# (the same `muzero serve` entrypoint the tests run as processes).
#
# CPU by default (the CPU torch wheel keeps the image small). For GPU pods, a CUDA base
# and the matching CUDA torch wheels:
#   docker build -t muzero:0.1.0 .
#   docker build -t muzero:0.1.0-cuda \
#     --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .

ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- python: the base with Python 3.11; builder and runtime share it, so the venv's
# interpreter path is the same in both.
FROM ${BASE_IMAGE} AS python
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# CUDA bases (Ubuntu 22.04) ship no Python: take 3.11 from the distribution. Versions are
# left to the base's release because they differ between bases; python:3.11 skips this.
# hadolint ignore=DL3008
RUN if ! command -v python3.11 >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# --- builder: the virtual environment with torch and muzero in it.
FROM python AS builder
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and on its own (its own layer, cached across source changes): anything that
# depends on torch installed before it would make pip fetch the default CUDA build from PyPI.
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY muzero ./muzero
COPY services ./services
# torch's C++ test binaries and headers serve no Python process (and the runtime has
# no compiler to use the headers): about 145 MB less. (torch/bin holds torch_shm_manager: kept.)
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && rm -rf /opt/venv/lib/python3.11/site-packages/torch/test \
              /opt/venv/lib/python3.11/site-packages/torch/include \
    && /opt/venv/bin/python -c "import muzero.cli, services.replay.main, services.learner.main, services.actor.main, services.reanalyze.main"

# --- runtime: the venv and a non-root user; no compilers, no sources, no pip cache.
FROM python AS runtime
ARG UID=10001
LABEL org.opencontainers.image.title="muzero" \
      org.opencontainers.image.description="MuZero services: replay, learner, actor, reanalyze" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid "${UID}" muzero \
    && useradd --system --uid "${UID}" --gid muzero --home-dir /home/muzero --create-home --shell /usr/sbin/nologin muzero
COPY --from=builder /opt/venv /opt/venv
# The pods run with a read-only root filesystem and an emptyDir on /tmp: caches go there.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache
WORKDIR /home/muzero
USER ${UID}:${UID}
# replay gRPC, learner checkpoint gRPC, actor/reanalyze health gRPC, Prometheus /metrics
EXPOSE 50051 50052 50053 9100
ENTRYPOINT ["muzero"]
CMD ["--help"]
