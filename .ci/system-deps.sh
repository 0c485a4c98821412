#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real (Prometheus server + promtool).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "prometheus/promtool missing: install Debian's 'prometheus' package (needs root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends prometheus
# The package starts a system service; the tests run their own server on loopback.
(systemctl disable --now prometheus 2>/dev/null || service prometheus stop 2>/dev/null || true)
