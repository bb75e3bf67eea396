# tierserve container images. Always name a target:
#
#   docker build --target cpu  -t tierserve:cpu  .   # Debian bookworm, CPU kernels
#   docker build --target cuda -t tierserve:cuda .   # CUDA runtime base (needs a registry with nvidia/cuda)
#
# Stages, in this order: build -> cpu, then cuda-build -> cuda. The legacy
# builder (no BuildKit) builds every stage above the target, so the CPU stages
# come first and `--target cpu` never touches the CUDA bases. Without
# `--target`, the last stage (cuda) is built.
#
# The binary is the only thing taken from a build stage; the runtime stages
# install just the shared libraries it links. It runs as the unprivileged user
# `tierserve` (uid 10001) as PID 1 in exec form, so `docker stop` delivers
# SIGTERM to it and it drains (see server/serve_command.cc).

# CUDA images: the toolkit version and the Ubuntu release of nvidia/cuda's
# `devel` and `runtime` tags (the release must ship CMake >= 3.25 and gRPC 1.51).
ARG CUDA_VERSION=12.6.3
ARG UBUNTU_VERSION=24.04

# ---------------------------------------------------------------------------
# build: compile the `tierserve` binary target only (no tests, no benchmarks).
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
# The build packages of scripts/setup.sh (less the test, Python and fetch
# tools). Unpinned: Debian bookworm's stable updates are what CI builds with.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libyaml-cpp-dev prometheus-cpp-dev nlohmann-json3-dev libicu-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# OFF: portable x86-64-v3 (AVX2/FMA) code, as an image runs on machines other
# than the one that built it. ON: -march=native for this build machine only.
ARG TIERSERVE_NATIVE=OFF
WORKDIR /src
# Only what the binary is built from, so that changes to tests, docs or deploy
# files keep the compile layers cached: first the libraries (kernels, runtime,
# the API), then the daemon's own sources, so that a change under server/
# recompiles server/ alone (the top-level CMakeLists.txt adds server/ once it
# is there; ninja finds the library objects up to date).
COPY CMakeLists.txt ./
COPY kernels/ kernels/
COPY runtime/ runtime/
COPY proto/ proto/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DTIERSERVE_NATIVE="${TIERSERVE_NATIVE}" -DTIERSERVE_CUDA=OFF \
      -DTIERSERVE_BUILD_TESTS=OFF -DTIERSERVE_BUILD_BENCH=OFF \
 && ninja -C build -j"$(nproc)" tierserve_kernels tierserve_runtime tierserve_proto
COPY cmake/ cmake/
COPY server/ server/
# The commit tierserve_build_info reports: the context has no .git, so pass it,
# e.g. --build-arg TIERSERVE_GIT_COMMIT="$(git rev-parse --short=12 HEAD)".
ARG TIERSERVE_GIT_COMMIT=unknown
RUN cmake -S . -B build \
 && ninja -C build -j"$(nproc)" tierserve \
 && install -D -m 0755 -s build/server/tierserve /out/tierserve

# ---------------------------------------------------------------------------
# cpu: the runtime image.
FROM debian:bookworm AS cpu
ARG DEBIAN_FRONTEND=noninteractive
# The shared libraries the binary links (ldd), by their bookworm packages.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libgrpc++1.51 libgrpc29 libprotobuf32 libyaml-cpp0.7 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libicu72 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tierserve \
 && useradd --system --uid 10001 --gid tierserve --home-dir /var/lib/tierserve \
      --shell /usr/sbin/nologin tierserve \
 && mkdir -p /models /var/lib/tierserve/offload /etc/tierserve \
 && chown tierserve:tierserve /models /var/lib/tierserve /var/lib/tierserve/offload
# The default config: serves /models/SmolLM2-135M-Instruct.Q4_1.gguf on 50051.
COPY deploy/tierserve.docker.yaml /etc/tierserve/tierserve.yaml
COPY --from=build /out/tierserve /usr/local/bin/tierserve
USER 10001:10001
WORKDIR /var/lib/tierserve
# Model files (read-only is enough) and the folder that modules placed on
# `disk` are written to (offload_folder).
VOLUME ["/models", "/var/lib/tierserve/offload"]
# gRPC (tierserve.v1.Generation, health, reflection) and Prometheus /metrics.
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
# grpc.health.v1.Health/Check on the gRPC port: `healthy` once every model is
# loaded (`starting` while they load within the start period), `unhealthy`
# after three failed checks, as when it drains or stops serving. A config that
# listens on another port needs `tierserve health --address 127.0.0.1:PORT`.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/tierserve", "health", "--timeout_seconds=4"]
ENTRYPOINT ["/usr/local/bin/tierserve"]
CMD ["serve", "--config", "/etc/tierserve/tierserve.yaml"]

# ---------------------------------------------------------------------------
# cuda-build: the same binary with the CUDA kernels, on nvidia/cuda's devel image.
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS cuda-build
ARG DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libyaml-cpp-dev prometheus-cpp-dev nlohmann-json3-dev libicu-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
ARG TIERSERVE_NATIVE=OFF
WORKDIR /src
COPY CMakeLists.txt ./
COPY kernels/ kernels/
COPY runtime/ runtime/
COPY proto/ proto/
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DTIERSERVE_NATIVE="${TIERSERVE_NATIVE}" -DTIERSERVE_CUDA=ON \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
      -DTIERSERVE_BUILD_TESTS=OFF -DTIERSERVE_BUILD_BENCH=OFF \
 && ninja -C build -j"$(nproc)" tierserve_kernels tierserve_runtime tierserve_proto
COPY cmake/ cmake/
COPY server/ server/
# The commit tierserve_build_info reports: the context has no .git, so pass it,
# e.g. --build-arg TIERSERVE_GIT_COMMIT="$(git rev-parse --short=12 HEAD)".
ARG TIERSERVE_GIT_COMMIT=unknown
RUN cmake -S . -B build \
 && ninja -C build -j"$(nproc)" tierserve \
 && install -D -m 0755 -s build/server/tierserve /out/tierserve
# Library package names change between Ubuntu releases (the t64 renames), so
# the runtime stage installs the packages that own the libraries this binary
# links, found here, less CUDA's own (the runtime base image has those).
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN ldd /out/tierserve | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
    | while read -r lib; do dpkg -S "$(realpath "$lib")" 2>/dev/null || true; done \
    | cut -d: -f1 | sort -u | grep -v -E '^(cuda-|libcublas|libnccl)' > /out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

# ---------------------------------------------------------------------------
# cuda: the runtime image on nvidia/cuda's runtime base (CUDA libraries included).
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS cuda
ARG DEBIAN_FRONTEND=noninteractive
COPY --from=cuda-build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
RUN groupadd --system --gid 10001 tierserve \
 && useradd --system --uid 10001 --gid tierserve --home-dir /var/lib/tierserve \
      --shell /usr/sbin/nologin tierserve \
 && mkdir -p /models /var/lib/tierserve/offload /etc/tierserve \
 && chown tierserve:tierserve /models /var/lib/tierserve /var/lib/tierserve/offload
COPY deploy/tierserve.docker.yaml /etc/tierserve/tierserve.yaml
COPY --from=cuda-build /out/tierserve /usr/local/bin/tierserve
USER 10001:10001
WORKDIR /var/lib/tierserve
VOLUME ["/models", "/var/lib/tierserve/offload"]
EXPOSE 50051 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/tierserve", "health", "--timeout_seconds=4"]
ENTRYPOINT ["/usr/local/bin/tierserve"]
CMD ["serve", "--config", "/etc/tierserve/tierserve.yaml"]
