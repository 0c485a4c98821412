#!/usr/bin/env bash
# Build the container images the real node runs, without Docker and without a registry.
#
#   bash testbin/images.sh            # build what is missing, write testbin/bin/images.json
#   bash testbin/images.sh --list     # print the cached archives this checkout uses
#
# 1. base:     a Debian rootfs made by mmdebstrap from Debian packages (python3 + venv),
#              committed as a buildah image; it stands in for the Dockerfile's PYTHON_IMAGE.
# 2. operator, trainer: `buildah bud` of the repository's Dockerfile targets, unchanged
#              (the same file users build with docker), on top of that base.
# 3. pause:    the sandbox image, a static Go program (testbin/pause) in a FROM-scratch image.
#
# Each result is an OCI archive in the cache ($TFTJ_IMAGE_CACHE, default
# ~/.cache/tftj/images), named by a hash of its inputs (the Dockerfile build context as
# `git ls-files` sees it plus the base's key), so a fresh clone on the same machine reuses
# it and only a change to an input rebuilds. Image references are the ones the CRD and the
# chart default to (docker.io/tftj/trainer:0.1.0, ...): imported into containerd they are
# "present", so IfNotPresent/Never never pull. testbin/realnode.py imports them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/.." && pwd)"
cache="${TFTJ_IMAGE_CACHE:-${HOME}/.cache/tftj/images}"
bin_dir="${here}/bin"
# buildah's own storage (layers; peaks at several GB) lives in the cache, not in /var/lib.
broot="${cache}/buildah/root"
brun="${cache}/buildah/run"
buildah_() { nice buildah --root "${broot}" --runroot "${brun}" --storage-driver overlay "$@"; }

for tool in buildah mmdebstrap go; do
  command -v "${tool}" >/dev/null || {
    echo "testbin/images.sh: '${tool}' not found; run .ci/system-deps.sh (Debian packages buildah, mmdebstrap) and install Go" >&2
    exit 1
  }
done

version="$(python3 -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' "${repo}/pyproject.toml")"
mkdir -p "${cache}" "${bin_dir}"
exec 9>"${cache}/.lock"
flock 9

digest() { sha256sum | cut -c1-12; }

# ---------------------------------------------------------------- base (mmdebstrap)
suite=bookworm
base_pkgs="python3,python3-venv,python-is-python3,ca-certificates,passwd,netbase,tzdata"
base_key="$(echo "base ${suite} ${base_pkgs} v1" | digest)"
base_ref="localhost/tftj-base:${base_key}"
if ! buildah_ inspect --type image "${base_ref}" >/dev/null 2>&1; then
  echo "images: base ${base_ref}: building with mmdebstrap"
  start=$(date +%s)
  tmp="$(mktemp -d "${cache}/.base.XXXXXX")"
  nice mmdebstrap --quiet --variant=minbase --include="${base_pkgs}" --format=tar \
    "${suite}" "${tmp}/base.tar"
  ctr="$(buildah_ from scratch)"
  buildah_ add "${ctr}" "${tmp}/base.tar" / >/dev/null
  buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "${ctr}"
  buildah_ commit --quiet "${ctr}" "${base_ref}" >/dev/null
  buildah_ rm "${ctr}" >/dev/null
  rm -rf "${tmp}"
  # Cold build times, read by bench/node_bench.py.
  echo "$(( $(date +%s) - start ))" > "${cache}/base.build-seconds"
  echo "images: base built in $(cat "${cache}/base.build-seconds")s"
fi

# ---------------------------------------------------------------- pause (Go, FROM scratch)
pause_key="$(cat "${here}/pause/go.mod" "${here}/pause/"*.go | { cat; go env GOVERSION; } | digest)"
pause_ref="registry.k8s.io/pause:tftj-${pause_key}"
pause_tar="${cache}/pause-${pause_key}.tar"
if [[ ! -f "${pause_tar}" ]]; then
  echo "images: pause: building"
  start=$(date +%s)
  tmp="$(mktemp -d "${cache}/.pause.XXXXXX")"
  (cd "${here}/pause" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags '-s -w' -o "${tmp}/pause" .)
  ctr="$(buildah_ from scratch)"
  buildah_ copy "${ctr}" "${tmp}/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "${ctr}"
  buildah_ commit --quiet "${ctr}" "${pause_ref}" >/dev/null
  buildah_ rm "${ctr}" >/dev/null
  buildah_ push --quiet "${pause_ref}" "oci-archive:${tmp}/pause.tar:${pause_ref}"
  mv "${tmp}/pause.tar" "${pause_tar}"
  echo "$(( $(date +%s) - start ))" > "${pause_tar}.build-seconds"
  rm -rf "${tmp}"
fi

# ---------------------------------------------------------------- operator, trainer (Dockerfile)
# Inputs: every tracked file the build context keeps (.dockerignore drops the rest), the
# Dockerfile, and the base. Untracked files under operator/ etc. are included too (a
# developer's uncommitted change must rebuild), hence --others.
context_key="$(cd "${repo}" && git ls-files -z --cached --others --exclude-standard \
  Dockerfile .dockerignore pyproject.toml README.md operator trainer_image examples/data \
  | sort -z | xargs -0 sha256sum | { cat; echo "${base_key}"; } | digest)"

declare -A refs=([operator]="docker.io/tftj/operator:${version}" [trainer]="docker.io/tftj/trainer:${version}")
declare -A tars=()
for target in operator trainer; do
  tar="${cache}/${target}-${context_key}.tar"
  tars[${target}]="${tar}"
  [[ -f "${tar}" ]] && { echo "images: ${target}: cached ${tar}"; continue; }
  echo "images: ${target}: buildah bud --target ${target} (first build takes minutes)"
  start=$(date +%s)
  # --layers: unchanged steps (the dependency install) come from buildah's cache.
  # The host's CA bundle: pip may reach PyPI through a TLS proxy only the host trusts.
  buildah_ bud --quiet --layers --pull-never --network host --isolation chroot \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg "PYTHON_IMAGE=${base_ref}" --target "${target}" -t "${refs[${target}]}" \
    -f "${repo}/Dockerfile" "${repo}" >/dev/null
  # zstd: compressing the ~2.4 GB TensorFlow layer with gzip costs minutes of CPU on every
  # export, zstd a fraction of it (containerd unpacks both).
  buildah_ push --quiet --compression-format zstd "${refs[${target}]}" \
    "oci-archive:${tar}.tmp:${refs[${target}]}"
  mv "${tar}.tmp" "${tar}"
  echo "$(( $(date +%s) - start ))" > "${tar}.build-seconds"
  echo "images: ${target}: built in $(cat "${tar}.build-seconds")s"
  # Keep the 3 newest archives of this target: other checkouts on the machine (a branch,
  # CI) may still use theirs; older ones go (buildah keeps its layer cache anyway).
  ls -t "${cache}/${target}"-*.tar | tail -n +4 | while read -r old; do rm -f "${old}" "${old}.build-seconds"; done
done

python3 - "${bin_dir}/images.json" <<EOF
import json, sys
json.dump({
  "pause": {"ref": "${pause_ref}", "archive": "${pause_tar}"},
  "operator": {"ref": "${refs[operator]}", "archive": "${tars[operator]}"},
  "trainer": {"ref": "${refs[trainer]}", "archive": "${tars[trainer]}"},
}, open(sys.argv[1], "w"), indent=2)
EOF
if [[ "${1:-}" == "--list" ]]; then cat "${bin_dir}/images.json"; fi
echo "images: ready (${bin_dir}/images.json)"
