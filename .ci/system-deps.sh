#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: Prometheus server + promtool;
# for the real node (tests/node, `make up-real`): runc, the CNI plugins, nftables,
# and buildah + mmdebstrap to build the images from the Dockerfile without Docker or a registry.
# Installs only what is missing.
set -euo pipefail
need=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
[ -x /usr/sbin/runc ] || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v nft >/dev/null || need+=(nftables)
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
# The prometheus package starts a system service; the tests run their own server on loopback.
if [[ " ${need[*]} " == *" prometheus "* ]]; then
  (systemctl disable --now prometheus 2>/dev/null || service prometheus stop 2>/dev/null || true)
fi
