#!/usr/bin/env bash
# Make sure the Prometheus tools the observability checks run are installed:
# promtool and prometheus (Debian package `prometheus`), amtool (`prometheus-alertmanager`).
#
#   observability/install-tools.sh     # installs what is missing when run as root on Debian/Ubuntu
#
# Exits 0 when every tool is there; otherwise installs them with apt-get (root only) or
# exits 1 saying what to install. The packages' own services are not started.
set -euo pipefail

declare -A package_of=([promtool]=prometheus [prometheus]=prometheus [amtool]=prometheus-alertmanager)
missing=()
for tool in promtool prometheus amtool; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing Prometheus tools: install the Debian/Ubuntu packages ${packages[*]}" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
    echo "(elsewhere: promtool and prometheus from prometheus.io, amtool from Alertmanager)" >&2
    exit 1
fi

echo "installing ${packages[*]} (apt-get)" >&2
# Keep the packages' daemons from starting: only their binaries are wanted here.
policy=/usr/sbin/policy-rc.d
created_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=true
fi
cleanup() {
    if [ "$created_policy" = true ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
for tool in promtool prometheus amtool; do
    command -v "$tool" >/dev/null 2>&1 || { echo "installed ${packages[*]} but $tool is still missing" >&2; exit 1; }
done
