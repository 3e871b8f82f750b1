#!/usr/bin/env bash
# Starts (or stops) a real container runtime and two local registries for the
# CRI pull strategy's tests (integration/cri_test.ts):
#
#   sudo bash .ci/containerd.sh up     # idempotent; about 20 s the first time
#   sudo bash .ci/containerd.sh down   # stops what `up` started, by PID
#   sudo bash .ci/containerd.sh status
#
# `up` installs the Debian packages it needs when they are missing, starts an
# open registry and one that requires htpasswd credentials (both plain HTTP on
# 127.0.0.1), starts containerd with the CRI plugin on its own socket, root and
# state directories, pushes a tiny image built by hand (a static busybox in one
# OCI layer, no Docker engine) and writes the endpoints to .ci/containerd.env.
#
# Environment: ICD_CRI_WORKDIR (default /tmp/icd-cri) holds every file the
# daemons use; ICD_CRI_ENV_FILE (default .ci/containerd.env) is the output;
# ICD_CRI_SNAPSHOTTER forces overlayfs or native instead of probing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${ICD_CRI_WORKDIR:-/tmp/icd-cri}"
ENV_FILE="${ICD_CRI_ENV_FILE:-$HERE/containerd.env}"
PIDS="$WORK/pids"
SOCK="$WORK/containerd.sock"
USER_NAME="icd"
# A throwaway password for a registry that only listens on 127.0.0.1 for the
# length of a test run; not a secret.
USER_PASS="icd-test-password"
REPO="icd/busybox"
TAG="1"
PACKAGES=(containerd runc docker-registry skopeo busybox-static apache2-utils)

say() { printf '[containerd.sh] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

need_root() {
  [[ "$(id -u)" == 0 ]] || die "must run as root (containerd mounts snapshots): sudo bash $0 $1"
}

# Packages are installed only when missing, so a second `up` on a prepared
# machine makes no network calls.
install_packages() {
  local missing=() pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
      missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$WORK/apt.log" 2>&1 || die "apt-get update failed, see $WORK/apt.log"
  apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1 ||
    die "apt-get install ${missing[*]} failed, see $WORK/apt.log"
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

free_port() {
  local port
  for port in $(shuf -i 20000-45000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free TCP port found on 127.0.0.1"
}

# Prints the status line of GET /v2/ (no curl needed).
http_status() {
  local port=$1 line
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=""
  exec 3<&- 3>&-
  printf '%s' "$line"
}

wait_for() {
  local what=$1 log=$2 tries=$3
  shift 3
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  say "last lines of $log:"
  tail -n 20 "$log" >&2 || true
  die "$what did not become ready"
}

start_registry() {
  local name=$1 port=$2 auth=$3 dir="$WORK/$1"
  mkdir -p "$dir/storage"
  {
    echo "version: 0.1"
    echo "log:"
    echo "  level: info"
    echo "  formatter: text"
    echo "  accesslog:"
    echo "    disabled: false"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: $dir/storage"
    echo "  delete:"
    echo "    enabled: true"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    if [[ "$auth" == yes ]]; then
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: image-cache-daemon-test"
      echo "    path: $dir/htpasswd"
    fi
  } >"$dir/config.yml"
  if [[ "$auth" == yes ]]; then
    htpasswd -Bbn "$USER_NAME" "$USER_PASS" >"$dir/htpasswd" 2>/dev/null
  fi
  # The registry writes its access log (one combined-log line per request)
  # to standard output and everything else to standard error.
  docker-registry serve "$dir/config.yml" >"$dir/access.log" 2>"$dir/registry.log" &
  echo "registry-$name $!" >>"$PIDS"
}

registry_ready() {
  local status
  status="$(http_status "$1")"
  [[ "$status" == *" 200 "* || "$status" == *" 401 "* ]]
}

snapshotter() {
  # overlayfs where the kernel and the backing filesystem allow it (it is much
  # faster), native (plain copies) elsewhere, e.g. inside some containers.
  # ICD_CRI_SNAPSHOTTER forces one.
  if [[ -n "${ICD_CRI_SNAPSHOTTER:-}" ]]; then
    echo "$ICD_CRI_SNAPSHOTTER"
    return 0
  fi
  local t="$WORK/overlay-probe"
  mkdir -p "$t/lower" "$t/upper" "$t/work" "$t/merged"
  if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" \
    "$t/merged" 2>/dev/null; then
    umount "$t/merged"
    rm -rf "$t"
    echo overlayfs
  else
    rm -rf "$t"
    echo native
  fi
}

start_containerd() {
  local snap=$1 reg=$2 auth_reg=$3 dir="$WORK/containerd"
  mkdir -p "$dir/root" "$dir/state" "$dir/opt" "$WORK/certs.d"
  local host
  for host in "127.0.0.1:$reg" "127.0.0.1:$auth_reg"; do
    mkdir -p "$WORK/certs.d/$host"
    # Plain HTTP: the test registries have no TLS.
    cat >"$WORK/certs.d/$host/hosts.toml" <<EOF
server = "http://$host"

[host."http://$host"]
  capabilities = ["pull", "resolve"]
EOF
  done
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"

[grpc]
  address = "$SOCK"
  # Under sudo, the caller's group may use the socket, so the tests need not
  # run as root.
  gid = ${SUDO_GID:-0}

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "127.0.0.1:$reg/$REPO:$TAG"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "$snap"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "$dir/cni/bin"
      conf_dir = "$dir/cni/conf"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$WORK/certs.d"
EOF
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo "containerd $!" >>"$PIDS"
}

cri_ready() {
  ctr --address "$SOCK" version &&
    ctr --address "$SOCK" plugins ls | grep -E 'io\.containerd\.grpc\.v1[[:space:]]+cri[[:space:]].*ok'
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Writes an OCI image layout by hand: one gzip layer holding a static busybox
# and a file naming the variant ($4), so that variants share no blob.
# $2 is the platform the image claims; with $3=index the layout's entry is an
# image index listing only that platform.
build_layout() {
  local out=$1 arch=$2 kind=$3 variant=$4
  local b="$out/blobs/sha256" root="$out/rootfs"
  rm -rf "$out"
  mkdir -p "$b" "$root/bin" "$root/etc"
  printf '%s\n' "$variant" >"$root/etc/icd-variant"
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  ln -s busybox "$root/bin/true"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$out/layer.tar" .
  local diff_id
  diff_id="$(sha "$out/layer.tar")"
  gzip -n -c "$out/layer.tar" >"$out/layer.tar.gz"
  local layer layer_size
  layer="$(sha "$out/layer.tar.gz")"
  layer_size="$(stat -c %s "$out/layer.tar.gz")"
  mv "$out/layer.tar.gz" "$b/$layer"
  rm -rf "$out/layer.tar" "$root"

  printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/bin/busybox"],"Cmd":["true"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"image-cache-daemon .ci/containerd.sh"}]}' \
    "$arch" "$diff_id" >"$out/config.json"
  local config config_size
  config="$(sha "$out/config.json")"
  config_size="$(stat -c %s "$out/config.json")"
  mv "$out/config.json" "$b/$config"

  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" >"$out/manifest.json"
  local manifest manifest_size
  manifest="$(sha "$out/manifest.json")"
  manifest_size="$(stat -c %s "$out/manifest.json")"
  mv "$out/manifest.json" "$b/$manifest"

  local top_type="application/vnd.oci.image.manifest.v1+json" top=$manifest top_size=$manifest_size
  if [[ "$kind" == index ]]; then
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}]}' \
      "$manifest" "$manifest_size" "$arch" >"$out/index-blob.json"
    top="$(sha "$out/index-blob.json")"
    top_size="$(stat -c %s "$out/index-blob.json")"
    top_type="application/vnd.oci.image.index.v1+json"
    mv "$out/index-blob.json" "$b/$top"
  fi
  printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$top_type" "$top" "$top_size" "$TAG" >"$out/index.json"
  echo "sha256:$top"
}

push() {
  local layout=$1 dest=$2
  shift 2
  skopeo copy --quiet --all --dest-tls-verify=false "$@" "oci:$layout:$TAG" "docker://$dest" \
    >>"$WORK/skopeo.log" 2>&1 || die "skopeo copy to $dest failed, see $WORK/skopeo.log"
}

node_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
  esac
}

other_arch() {
  # A platform the node is not: s390x, unless the node is one.
  if [[ "$(node_arch)" == s390x ]]; then echo ppc64le; else echo s390x; fi
}

all_alive() {
  [[ -f "$PIDS" ]] || return 1
  local name pid
  while read -r name pid; do
    alive "$pid" || return 1
  done <"$PIDS"
}

cmd_down() {
  need_root down
  if [[ -f "$PIDS" ]]; then
    local name pid
    while read -r name pid; do
      if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        say "stopped $name (pid $pid)"
      fi
    done <"$PIDS"
    while read -r name pid; do
      for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
    done <"$PIDS"
    rm -f "$PIDS"
  fi
  # Snapshots that containerd left mounted keep the work dir busy.
  if [[ -d "$WORK/containerd/root" ]]; then
    local m
    for m in $(grep -o " $WORK/containerd/[^ ]*" /proc/mounts 2>/dev/null | sort -r || true); do
      umount "$m" 2>/dev/null || true
    done
  fi
  rm -f "$ENV_FILE"
}

cmd_up() {
  need_root up
  mkdir -p "$WORK"
  if all_alive && [[ -f "$ENV_FILE" ]] && cri_ready >/dev/null 2>&1; then
    say "already up; endpoints in $ENV_FILE"
    return 0
  fi
  # A half-started set (a daemon died) is restarted from scratch.
  cmd_down
  rm -rf "$WORK"
  mkdir -p "$WORK"
  local started=$SECONDS
  install_packages

  local reg auth_reg
  reg="$(free_port)"
  auth_reg="$(free_port)"
  [[ "$reg" != "$auth_reg" ]] || auth_reg="$(free_port)"
  start_registry open "$reg" no
  start_registry auth "$auth_reg" yes
  local snap
  snap="$(snapshotter)"
  start_containerd "$snap" "$reg" "$auth_reg"

  wait_for "registry on 127.0.0.1:$reg" "$WORK/open/registry.log" 100 registry_ready "$reg"
  wait_for "registry on 127.0.0.1:$auth_reg" "$WORK/auth/registry.log" 100 registry_ready "$auth_reg"

  local digest pinned_digest other_digest
  digest="$(build_layout "$WORK/layout" "$(node_arch)" manifest main)"
  pinned_digest="$(build_layout "$WORK/layout-pinned" "$(node_arch)" manifest pinned)"
  other_digest="$(build_layout "$WORK/layout-other" "$(other_arch)" index other)"
  push "$WORK/layout" "127.0.0.1:$reg/$REPO:$TAG"
  push "$WORK/layout-pinned" "127.0.0.1:$reg/icd/pinned:$TAG"
  push "$WORK/layout" "127.0.0.1:$reg/icd/refresh:$TAG"
  push "$WORK/layout" "127.0.0.1:$reg/icd/kubelet:$TAG"
  push "$WORK/layout-other" "127.0.0.1:$reg/icd/otherarch:$TAG"
  push "$WORK/layout" "127.0.0.1:$auth_reg/$REPO:$TAG" --dest-creds "$USER_NAME:$USER_PASS"

  wait_for "containerd CRI plugin on $SOCK" "$WORK/containerd/containerd.log" 150 cri_ready

  cat >"$ENV_FILE" <<EOF
# Written by .ci/containerd.sh up; removed by down.
ICD_CRI_SOCKET=$SOCK
ICD_REGISTRY=127.0.0.1:$reg
ICD_REGISTRY_LOG=$WORK/open/access.log
ICD_AUTH_REGISTRY=127.0.0.1:$auth_reg
ICD_AUTH_REGISTRY_LOG=$WORK/auth/access.log
ICD_REGISTRY_USER=$USER_NAME
ICD_REGISTRY_PASS=$USER_PASS
ICD_TEST_IMAGE=127.0.0.1:$reg/$REPO:$TAG
ICD_TEST_REPO=$REPO
ICD_TEST_TAG=$TAG
ICD_TEST_DIGEST=$digest
ICD_PINNED_IMAGE=127.0.0.1:$reg/icd/pinned@$pinned_digest
ICD_OTHER_ARCH_DIGEST=$other_digest
ICD_SNAPSHOTTER=$snap
ICD_CRI_WORKDIR=$WORK
EOF
  say "up in $((SECONDS - started)) s (snapshotter $snap); endpoints in $ENV_FILE"
}

cmd_status() {
  if all_alive; then
    say "running:"
    cat "$PIDS" >&2
    [[ -f "$ENV_FILE" ]] && cat "$ENV_FILE"
  else
    say "not running"
    return 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: $0 up|down|status" ;;
esac
