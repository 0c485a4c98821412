#!/usr/bin/env bash
# Build the local control plane binaries from their pinned Go modules.
#
#   bash testbin/build.sh            # build what is missing, link into testbin/bin/
#   bash testbin/build.sh peer       # only bench/peer_bench.py's peer operator and load client
#
# Each component (k8s, etcd, kwok, helm, kueue; for the real node: node = kubelet + kube-proxy,
# containerd, coredns, prometheus, and the pause program testbin/images.sh builds) is its own Go
# module under testbin/<name>/
# so their dependency graphs never have to agree. Binaries are built into a cache
# OUTSIDE the repository, keyed by the pinned version and a hash of the module
# files, so a fresh clone elsewhere on the same machine (CI) reuses them and only a
# version bump rebuilds. GOMODCACHE/GOCACHE keep their defaults on purpose: they
# persist across clones too and make even a rebuild mostly incremental.
#
# Environment:
#   TFTJ_TESTBIN_CACHE   cache root (default: $HOME/.cache/tftj/testbin)
#   TFTJ_TESTBIN_FORCE=1 rebuild even when cached binaries exist
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${TFTJ_TESTBIN_CACHE:-${HOME}/.cache/tftj/testbin}"
bin_dir="${here}/bin"

if ! command -v go >/dev/null 2>&1; then
  echo "testbin/build.sh: 'go' not found on PATH; Go >= 1.26 is required to build the control plane" >&2
  exit 1
fi

go_version="$(go env GOVERSION)"
export CGO_ENABLED=0

# required_version MODULE_DIR MODULE_PATH -> the version pinned in that go.mod
required_version() {
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

# cache_key NAME VERSION MODULE_DIR LDFLAGS -> NAME-VERSION-<hash of module files, go version, flags>
# Anything that changes the produced binary is in the hash; comments in this
# script are not, so editing it does not force a rebuild.
cache_key() {
  local name="$1" version="$2" dir="$3" ldflags="$4" digest
  digest="$(cat "${dir}/go.mod" "${dir}/go.sum" "${dir}"/*.go 2>/dev/null \
    | { cat; echo "${go_version} CGO_ENABLED=${CGO_ENABLED} -trimpath ${ldflags}"; } | sha256sum | cut -c1-12)"
  echo "${name}-${version}-${digest}"
}

# build NAME MODULE_DIR "BINARY=PACKAGE ..." LDFLAGS VERSION [TAGS]
# Builds into a temp dir next to the cache entry and renames it into place only
# when every binary linked, so an interrupted build never looks complete.
build() {
  local name="$1" dir="$2" targets="$3" ldflags="$4" version="$5" tags="${6:-}"
  local key out tmp start
  # Build tags are part of the key only when set, so untagged keys stay what they were.
  key="$(cache_key "${name}" "${version}" "${dir}" "${ldflags}${tags:+ -tags=${tags}}")"
  out="${cache_root}/${key}"
  if [[ "${mode}" == plan ]]; then
    [[ "${TFTJ_TESTBIN_FORCE:-0}" != "1" && -f "${out}/.complete" ]] || missing+=("${dir}")
    return 0
  fi
  if [[ "${TFTJ_TESTBIN_FORCE:-0}" != "1" && -f "${out}/.complete" ]]; then
    echo "testbin: ${name} ${version}: cached in ${out}"
  else
    echo "testbin: ${name} ${version}: building into ${out} (first build takes minutes)"
    start="$(date +%s)"
    tmp="$(mktemp -d "${cache_root}/.${key}.XXXXXX")"
    local pkgs=() t
    for t in ${targets}; do pkgs+=("${t#*=}"); done
    # One `go build` for all packages of a module so shared packages compile once.
    # -buildvcs=false: testbin/ sits inside the tftj git checkout; its commit is not
    # the binaries' version (and stamping fails on checkouts git calls "dubious").
    (cd "${dir}" && go build -trimpath -buildvcs=false -tags "${tags}" -ldflags "${ldflags}" -o "${tmp}/" "${pkgs[@]}")
    for t in ${targets}; do
      local want="${t%%=*}" got
      got="$(basename "${t#*=}")"
      [[ "${got}" == "${want}" ]] || mv "${tmp}/${got}" "${tmp}/${want}"
    done
    echo "$(( $(date +%s) - start ))" > "${tmp}/.build-seconds"
    touch "${tmp}/.complete"
    rm -rf "${out}"
    mv "${tmp}" "${out}"
    echo "testbin: ${name} ${version}: built in $(cat "${out}/.build-seconds")s"
  fi
  for t in ${targets}; do
    ln -sfn "${out}/${t%%=*}" "${bin_dir}/${t%%=*}"
  done
  echo "${out}" >> "${bin_dir}/${cache_dirs_file}.tmp"
}

mkdir -p "${cache_root}" "${bin_dir}"

# Two builds at once (a developer's `make test` and CI on the same machine) would
# race on the same cache entry; serialise them.
exec 9>"${cache_root}/.lock"
flock 9

total_start="$(date +%s)"

# The peer of bench/peer_bench.py: Kubeflow training-operator (testbin/peer/go.mod). Built
# only on request, by the same build() as the control plane: make test never needs it. It
# records its cache dir in its own list, so .cache-dirs keeps naming the control plane's.
if [[ "${1:-}" == "peer" ]]; then
  mode=build cache_dirs_file=.cache-dirs-peer
  rm -f "${bin_dir}/${cache_dirs_file}.tmp"
  peer_version="$(required_version "${here}/peer" github.com/kubeflow/training-operator)"
  build peer "${here}/peer" "training-operator=github.com/kubeflow/training-operator/cmd/training-operator.v1" \
    "-s -w" "${peer_version}"
  # The admission benchmark's load client (standard library only): Go, not Python, so that
  # on 2 cores the webhook figures are the webhook's.
  build hammer "${here}/hammer" "webhook-hammer=tftj.dev/testbin/hammer" "-s -w" v0
  mv "${bin_dir}/${cache_dirs_file}.tmp" "${bin_dir}/${cache_dirs_file}"
  echo "testbin: peer ready in ${bin_dir} ($(( $(date +%s) - total_start ))s)"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "testbin/build.sh: unknown argument '$1' (none builds the control plane; 'peer' the benchmark's peer)" >&2
  exit 2
fi
cache_dirs_file=.cache-dirs
rm -f "${bin_dir}/${cache_dirs_file}.tmp"

# The components, in build order. Called twice: `mode=plan` only lists the module dirs
# whose binaries are not cached, `mode=build` builds them.
components() {

k8s_version="$(required_version "${here}/k8s" k8s.io/kubernetes)"
k8s_minor="${k8s_version#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X ${p}.gitVersion=${k8s_version} -X ${p}.gitMajor=1 -X ${p}.gitMinor=${k8s_minor}"
  k8s_ldflags+=" -X ${p}.gitTreeState=clean -X ${p}.gitCommit=module-${k8s_version}"
done
build k8s "${here}/k8s" \
  "kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler" \
  "${k8s_ldflags}" "${k8s_version}"

etcd_version="$(required_version "${here}/etcd" go.etcd.io/etcd/server/v3)"
build etcd "${here}/etcd" "etcd=tftj.dev/testbin/etcd" \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-${etcd_version}" "${etcd_version}"

kwok_version="$(required_version "${here}/kwok" sigs.k8s.io/kwok)"
build kwok "${here}/kwok" "kwok=sigs.k8s.io/kwok/cmd/kwok" \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v}" "${kwok_version}"

helm_version="$(required_version "${here}/helm" helm.sh/helm/v3)"
build helm "${here}/helm" "helm=helm.sh/helm/v3/cmd/helm" \
  "-s -w -X helm.sh/helm/v3/internal/version.version=${helm_version} -X helm.sh/helm/v3/internal/version.gitCommit=module-${helm_version} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
  "${helm_version}"

# Kueue's controller manager (tests/cluster/test_kueue.py, docs/kueue.md). Its CRDs are
# not copied into the repository: testbin/kueuecluster.py reads them from this same module
# version in GOMODCACHE (`go list -m` below fetches it when missing).
kueue_version="$(required_version "${here}/kueue" sigs.k8s.io/kueue)"
build kueue "${here}/kueue" "kueue=sigs.k8s.io/kueue/cmd/kueue" \
  "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=${kueue_version} -X sigs.k8s.io/kueue/pkg/version.GitCommit=module-${kueue_version} -X sigs.k8s.io/kueue/pkg/version.BuildDate=module" \
  "${kueue_version}"

# ---- the real node (tests/node, `make up-real`); runc and the CNI plugins are Debian's.
# Same k8s.io/kubernetes version and ldflags as the control plane: GOCACHE shares the
# packages both use, so this costs the kubelet/kube-proxy-only packages and the links.
node_version="$(required_version "${here}/node" k8s.io/kubernetes)"
[[ "${node_version}" == "${k8s_version}" ]] || {
  echo "testbin: node module pins k8s.io/kubernetes ${node_version}, control plane ${k8s_version}; keep them equal" >&2
  exit 1
}
build node "${here}/node" \
  "kubelet=k8s.io/kubernetes/cmd/kubelet kube-proxy=k8s.io/kubernetes/cmd/kube-proxy" \
  "${k8s_ldflags}" "${node_version}"

containerd_version="$(required_version "${here}/containerd" github.com/containerd/containerd/v2)"
build containerd "${here}/containerd" \
  "containerd=github.com/containerd/containerd/v2/cmd/containerd containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 ctr=github.com/containerd/containerd/v2/cmd/ctr" \
  "-s -w -X github.com/containerd/containerd/v2/version.Version=${containerd_version}" \
  "${containerd_version}" "no_btrfs no_devmapper no_zfs"

coredns_version="$(required_version "${here}/coredns" github.com/coredns/coredns)"
build coredns "${here}/coredns" "coredns=github.com/coredns/coredns" "-s -w" "${coredns_version}"

# ---- Prometheus with Kubernetes service discovery (tests/node/test_prometheus.py); Debian's
# package is built without it. Only the kubernetes SD plugin (`remove_all_sd` drops the cloud
# ones and their SDKs) and no embedded React UI (`builtinassets` unset): the HTTP API is all
# the tests use.
prometheus_version="$(required_version "${here}/prometheus" github.com/prometheus/prometheus)"
# The Go module's v0.MMM.P is release v(MMM/100).(MMM%100).P (v0.316.0 = Prometheus 3.16.0).
prometheus_minor="${prometheus_version#v0.}"; prometheus_minor="${prometheus_minor%%.*}"
prometheus_release="$(( prometheus_minor / 100 )).$(( prometheus_minor % 100 )).${prometheus_version##*.}"
build prometheus "${here}/prometheus" "prometheus=github.com/prometheus/prometheus/cmd/prometheus" \
  "-s -w -X github.com/prometheus/common/version.Version=${prometheus_release} -X github.com/prometheus/common/version.Revision=module-${prometheus_version} -X github.com/prometheus/common/version.Branch=module" \
  "${prometheus_version}" "remove_all_sd enable_kubernetes_sd"

}

mode=plan missing=()
components
# A cold build spends a third of its time downloading modules while the CPU idles, and the
# compiles leave the network idle: download the modules of every component still to build
# in the background (one at a time; GOMODCACHE is safe for concurrent go commands) while the
# first one compiles. Best effort: a failed download surfaces in that component's own build.
prefetch_pid=""
if [[ ${#missing[@]} -gt 1 ]]; then
  ( for dir in "${missing[@]:1}"; do (cd "${dir}" && nice go mod download) >/dev/null 2>&1 || true; done ) &
  prefetch_pid=$!
  trap '[[ -n "${prefetch_pid}" ]] && kill "${prefetch_pid}" 2>/dev/null || true' EXIT
fi
mode=build
components
[[ -z "${prefetch_pid}" ]] || wait "${prefetch_pid}" || true

# The prometheus-operator: nothing is built from it; testbin/promoperator.py reads its CRDs
# (tests/cluster/test_chart.py) from the version pinned in testbin/promoperator/go.mod,
# fetched into GOMODCACHE here (seconds; a no-op once there).
(cd "${here}/promoperator" && go mod download github.com/prometheus-operator/prometheus-operator)

mv "${bin_dir}/${cache_dirs_file}.tmp" "${bin_dir}/${cache_dirs_file}"
echo "testbin: binaries ready in ${bin_dir} ($(( $(date +%s) - total_start ))s)"
