# syntax=docker/dockerfile:1.7
#
# Images of image-cache-daemon, for linux/amd64 and linux/arm64:
#
#   docker buildx build --platform linux/amd64,linux/arm64 --target daemon     -t …/image-cache-daemon:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --target daemon-cri -t …/image-cache-daemon:0.1.0-cri .
#   docker buildx build --platform linux/amd64,linux/arm64 --target warden     -t …/warden:0.1.0 .
#
# Every build step runs on the build machine's own platform (the bundle is
# plain JavaScript; the warden uses a cross gcc), so no emulation is needed.
#
# Base images are pinned by tag here. Pin them by digest too
# (name:tag@sha256:…) in the release process; Renovate or Dependabot keep
# the digests current. This repository's machines cannot pull images, so no
# digest here has been verified by hand.

ARG DENO_VERSION=2.9.6

# ---------------------------------------------------------------------------
# The daemon: the shipped bundle (`deno task build`: esbuild, tree-shaken,
# minified, with a source map) run by the Deno binary under the permission
# set from deno.json. Not `deno compile`: the bundle with a warmed Deno cache
# is what bench/RESULTS.md measures (scenario 7), the smallest resident size.
FROM --platform=$BUILDPLATFORM denoland/deno:debian-${DENO_VERSION} AS source
WORKDIR /src
COPY deno.json deno.lock ./
COPY . .
# The bundle is plain JavaScript: built once, on the build machine, for every
# architecture. Only the permission sets of deno.json go into the image (the
# bundle needs no import map).
RUN deno task build \
 && mkdir -p /app/dist \
 && cp dist/*.js dist/*.js.map /app/dist/ \
 && deno eval 'const c = JSON.parse(Deno.readTextFileSync("deno.json")); Deno.writeTextFileSync("/app/deno.json", JSON.stringify({ permissions: c.permissions }, null, 2));'
# Warm the Deno cache: without it every pod's first start analyses the bundle
# and peaks ~80 MiB higher (bench/RESULTS.md). The cache is architecture-neutral
# (module analysis); V8's code cache entries are checked and rebuilt if not.
ENV DENO_DIR=/deno-dir
RUN cd /app \
 && deno cache --no-lock dist/image-cache-daemon.js \
 && deno run -P=daemon --no-lock dist/image-cache-daemon.js --version \
 && chmod -R a+rX,a-w /deno-dir /app

# The Deno binary for the image's architecture.
FROM denoland/deno:bin-${DENO_VERSION} AS deno-bin

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
# Runtime: distroless with glibc and libgcc (what the Deno binary links), no
# shell, no package manager, non-root. The Deno cache is read-only (the pod's
# root filesystem is): Deno reads the warmed cache and skips writing.
# The V8 flags are build/v8_flags.ts's (chosen in bench scenario 7); the
# old-space limit keeps V8's heap under the DaemonSet's memory limit
# (manifests/base/daemonset.yaml), so it collects before the kernel kills.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=deno-bin /deno /bin/deno
COPY --from=source /app /app
COPY --from=source /deno-dir /deno-dir
ENV DENO_DIR=/deno-dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# The node daemon's V8 flags (build/v8_flags.ts): --optimize-for-size and an
# old-space limit matched to the DaemonSet's memory limit (256Mi). An
# environment variable, not --v8-flags, so the aggregator's Deployment can
# replace them with its own (no --optimize-for-size, larger semi-spaces, a
# larger limit).
ENV DENO_V8_FLAGS=--optimize-for-size,--max-old-space-size=160
WORKDIR /app
USER 65532:65532
EXPOSE 8080

FROM runtime AS daemon-cri
ENTRYPOINT ["/bin/deno", "run", "-P=daemon-cri", "--no-lock", "--quiet", "dist/image-cache-daemon.js"]

# The default target (last): the pod-strategy daemon.
FROM runtime AS daemon
ENTRYPOINT ["/bin/deno", "run", "-P=daemon", "--no-lock", "--quiet", "dist/image-cache-daemon.js"]
