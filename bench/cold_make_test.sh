#!/usr/bin/env bash
# `make test` as on a fresh machine: a fresh clone of HEAD with every cache the project's
# scripts and tools create pointed at empty directories (Go modules and build cache, the
# testbin and image caches, pip, pre-commit), so nothing built by an earlier run is reused.
# Debian packages (.ci/system-deps.sh) stay installed: apt is not redirected.
#
#   bash bench/cold_make_test.sh [WORKDIR]     # default: a new dir under /tmp; needs ~25 GB
#
# Run it on an otherwise idle machine: the figure is the wall time printed at the end (plus the
# CPU seconds, which do not depend on load). It writes WORKDIR/log and WORKDIR/result, and the
# section "make test on a fresh machine" of docs/benchmarks.md (bench/cold_report.py).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/tftj-cold.XXXXXX)}"
mkdir -p "${work}"
git clone --quiet "${repo}" "${work}/repo"
export GOMODCACHE="${work}/gomod" GOCACHE="${work}/gocache" \
  TFTJ_TESTBIN_CACHE="${work}/testbin" TFTJ_IMAGE_CACHE="${work}/images" \
  PIP_CACHE_DIR="${work}/pip" PRE_COMMIT_HOME="${work}/pre-commit" \
  VIRTUALENV_OVERRIDE_APP_DATA="${work}/virtualenv" CI=true
echo "cold make test in ${work} (log: ${work}/log)"
start="$(date +%s)"
rc=0
(cd "${work}/repo" && /usr/bin/time -f 'cpu user=%U s sys=%S s' -o "${work}/cpu" bash .ci/run) \
  >"${work}/log" 2>&1 || rc=$?
wall="$(( $(date +%s) - start ))"
echo "rc=${rc} wall=${wall}s ($(( wall / 60 )) min) $(cat "${work}/cpu") load=$(cut -d' ' -f1-3 /proc/loadavg)" \
  | tee "${work}/result"
# Go's module cache is read-only by design; make it removable.
chmod -R u+w "${work}/gomod" 2>/dev/null || true
# docs/benchmarks.md, "make test on a fresh machine" (this checkout's copy).
python3 "${repo}/bench/cold_report.py" "${work}/log" "${work}/result" >/dev/null || true
exit "${rc}"
