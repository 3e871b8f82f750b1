# syntax=docker/dockerfile:1.7
#
# Images of image-cache-daemon, for linux/amd64 and linux/arm64:
#
#   docker buildx build --platform linux/amd64,linux/arm64 --target daemon     -t …/image-cache-daemon:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --target daemon-cri -t …/image-cache-daemon:0.1.0-cri .
#   docker buildx build --platform linux/amd64,linux/arm64 --target warden     -t …/warden:0.1.0 .
#
# Every build step runs on the build machine's own platform and cross-compiles
# (deno compile --target, a cross gcc), so no emulation is needed.
#
# Base images are pinned by tag here. Pin them by digest too
# (name:tag@sha256:…) in the release process; Renovate or Dependabot keep
# the digests current. This repository's machines cannot pull images, so no
# digest here has been verified by hand.

ARG DENO_VERSION=2.9.6

# ---------------------------------------------------------------------------
# The daemon: `deno compile` with the permission set baked in. The binary
# cannot do more than deno.json's set allows, whatever its arguments.
FROM --platform=$BUILDPLATFORM denoland/deno:debian-${DENO_VERSION} AS source
WORKDIR /src
COPY deno.json deno.lock ./
COPY . .
# Fetch the npm packages once, for both compile stages.
RUN deno install --frozen --entrypoint main.ts

FROM source AS compile-daemon
ARG TARGETARCH
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported architecture: $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && deno compile --frozen -P=daemon --target "$target" -o /out/image-cache-daemon main.ts

FROM source AS compile-daemon-cri
ARG TARGETARCH
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu ;; \
      *) echo "unsupported architecture: $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && deno compile --frozen -P=daemon-cri --target "$target" -o /out/image-cache-daemon main.ts

# ---------------------------------------------------------------------------
# The warden: a static no-op binary of a few KiB, no libc (warden/warden.c).
FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS warden-build
ARG TARGETARCH
WORKDIR /src
COPY warden/ warden/
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-linux-gnu ;; \
      arm64) triple=aarch64-linux-gnu ;; \
      *) echo "unsupported architecture: $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    if [ "$(dpkg --print-architecture)" = "$TARGETARCH" ]; then pkg=gcc; \
    else pkg="gcc-$(echo "$triple" | tr _ -)"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends "$pkg"; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir /out; \
    sh warden/build.sh /out/warden "$triple-gcc"

# The pull pod's init container: copies the binary into the emptyDir that the
# target image's container runs it from. Nothing else is in the image.
FROM scratch AS warden
COPY --from=warden-build --chmod=0555 /out/warden /warden
USER 65532:65532
ENTRYPOINT ["/warden", "--install", "/var/run/image-cache-daemon/warden"]

# ---------------------------------------------------------------------------
# Runtime: distroless with glibc and libgcc (what a compiled Deno binary
# links), no shell, no package manager, non-root.
FROM gcr.io/distroless/cc-debian12:nonroot AS daemon-cri
COPY --from=compile-daemon-cri --chmod=0555 /out/image-cache-daemon /image-cache-daemon
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/image-cache-daemon"]

# The default target (last): the pod-strategy daemon.
FROM gcr.io/distroless/cc-debian12:nonroot AS daemon
COPY --from=compile-daemon --chmod=0555 /out/image-cache-daemon /image-cache-daemon
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/image-cache-daemon"]
