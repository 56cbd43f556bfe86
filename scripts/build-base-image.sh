#!/usr/bin/env bash
# Build the local base image of deploy/Dockerfile: Debian bookworm (minbase) with its
# python3 (3.11), made with debootstrap and imported into podman. For machines that reach
# no container registry; where one is reachable, build with --build-arg
# BASE_IMAGE=python:3.11-slim instead and skip this script.
#
#   scripts/build-base-image.sh           build it unless it exists (idempotent)
#   scripts/build-base-image.sh --force   build it again
#
# Environment: BASE_IMAGE (default localhost/switchboard-base:bookworm), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), HOST_CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt), CONTAINERS_CONF (default: a file this script
# writes under ${TMPDIR:-/tmp}/switchboard-containers; never the global one).
#
# Sourced (`. scripts/build-base-image.sh`), it only defines the functions below, for
# scripts/image-check.sh.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/switchboard-base:bookworm}"
DEBIAN_SUITE=bookworm # its python3 is 3.11, the version the project targets
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
# python3-venv brings ensurepip (pip for the builder stage); the runtime venv has no pip.
BASE_PACKAGES=python3,python3-venv,ca-certificates

die() {
  echo "build-base-image: $*" >&2
  exit 1
}

# Install the Debian packages behind the commands given as "command:package" pairs,
# or stop saying how when this is not root.
require_tools() {
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]]; then
    die "missing ${missing[*]}: install with 'sudo apt-get install -y ${missing[*]}'"
  fi
  echo "build-base-image: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Point podman at a containers.conf of our own (runc, cgroupfs, ulimits that fit a
# machine without systemd), unless the caller chose one; exported for every podman call.
use_containers_conf() {
  if [[ -n "${CONTAINERS_CONF:-}" ]]; then
    [[ -f "$CONTAINERS_CONF" ]] || die "CONTAINERS_CONF=$CONTAINERS_CONF: no such file"
    export CONTAINERS_CONF
    return 0
  fi
  local dir="${TMPDIR:-/tmp}/switchboard-containers"
  mkdir -p "$dir"
  cat >"$dir/containers.conf.new" <<'EOF'
# Written by scripts/build-base-image.sh for podman builds and runs of Switchboard.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  mv "$dir/containers.conf.new" "$dir/containers.conf"
  export CONTAINERS_CONF="$dir/containers.conf"
}

# Build BASE_IMAGE unless it exists; with "force", build it again.
build_base_image() {
  local force="${1:-}"
  require_tools podman:podman runc:runc
  use_containers_conf
  if [[ "$force" != force ]] && podman image exists "$BASE_IMAGE"; then
    echo "build-base-image: $BASE_IMAGE exists (--force builds it again)"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root: run 'sudo $0'"
  require_tools debootstrap:debootstrap
  [[ -f "$HOST_CA_BUNDLE" ]] || die "HOST_CA_BUNDLE=$HOST_CA_BUNDLE: no such file"

  local work started=$SECONDS
  work="$(mktemp -d "${TMPDIR:-/var/tmp}/switchboard-base.XXXXXX")"
  _base_work="$work"
  trap remove_base_work EXIT
  local rootfs="$work/rootfs"
  echo "build-base-image: debootstrap $DEBIAN_SUITE ($BASE_PACKAGES) from $DEBIAN_MIRROR"
  if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" \
    "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above); is $DEBIAN_MIRROR reachable?"
  fi
  slim_rootfs "$rootfs"
  trust_host_cas "$rootfs"

  local python_version
  python_version="$(chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')"
  echo "build-base-image: importing $BASE_IMAGE (Python $python_version)"
  tar -C "$rootfs" --numeric-owner -c . | podman import --quiet \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.opencontainers.image.title=switchboard-base" \
    --change "LABEL org.opencontainers.image.description=Debian $DEBIAN_SUITE minbase with Python $python_version" \
    --message "debootstrap --variant=minbase $DEBIAN_SUITE + $BASE_PACKAGES" \
    - "$BASE_IMAGE" >/dev/null
  remove_base_work
  trap - EXIT
  echo "build-base-image: built $BASE_IMAGE in $((SECONDS - started))s" \
    "($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
}

# Remove the debootstrap tree, after unmounting what a failed debootstrap may have left
# mounted inside it (proc, sys): rm must never walk into the host's.
_base_work=""
remove_base_work() {
  [[ -n "$_base_work" && -d "$_base_work" ]] || return 0
  local mount_point
  while read -r mount_point; do
    umount -l "$mount_point" || true
  done < <(awk -v root="$_base_work/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$_base_work"
  _base_work=""
}

# What a slim image leaves out: package caches and lists, documentation (copyright
# files stay: the licenses travel with the image), and the same for later apt installs.
slim_rootfs() {
  local rootfs="$1"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/90slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
    -exec rm -rf {} +
  # Machine identity must not be baked in.
  : >"$rootfs/etc/machine-id"
  rm -f "$rootfs/var/lib/dbus/machine-id"
}

# Trust what this host trusts (a TLS-inspecting egress proxy's CA, for one), or pip
# cannot reach PyPI from the build: its local CAs join the image's store, and the host's
# bundle replaces the image's.
trust_host_cas() {
  local rootfs="$1"
  if [[ -d /usr/local/share/ca-certificates ]]; then
    cp -a /usr/local/share/ca-certificates/. "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 ||
      die "update-ca-certificates failed in the new root filesystem"
  fi
  cp "$HOST_CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
}

main() {
  case "${1:-}" in
    "") build_base_image ;;
    --force) build_base_image force ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown argument: $1 (usage: $0 [--force])" ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
