#!/usr/bin/env bash
# Build fleet's local toolchain from Go modules into a cache outside the repo.
#
#   tools/build.sh [FAMILY ...]     (default: every family)
#
# Cache: $FLEET_TOOLCHAIN_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleet/toolchain).
# Each family is built into $CACHE/<family>/<hash>/ where <hash> covers the family's wrapper
# files and this script, so a warm run only checks stamps. $CACHE/bin/ holds symlinks to the
# current build of every tool, $CACHE/share/ the non-Go files (Flux manifests, pulumi scripts).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${FLEET_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/toolchain}
mkdir -p "$cache/bin" "$cache/share" "$cache/logs"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.8.2
PULUMI_VERSION=v3.259.0
FLUX_SOURCE_VERSION=v1.9.6
FLUX_KUSTOMIZE_VERSION=v1.9.6

families_all=(etcd kubernetes kwok kustomize pulumi flux)

say() { printf '%s\n' "$*" >&2; }

family_hash() {
  # Hash of the family's wrapper files, plus this script's version pins.
  ( cd "$here/$1" && find . -type f ! -name '*.log' | LC_ALL=C sort | xargs sha256sum
    grep -E '^[A-Z0-9_]+_VERSION=' "$here/build.sh" ) | sha256sum | cut -c1-12
}

gobuild() {  # gobuild FAMILY OUTDIR LDFLAGS [TAGS] -- PKG...
  local fam=$1 out=$2 ldflags=$3 tags=$4; shift 5
  mkdir -p "$out/bin"
  ( cd "$here/$fam" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$out/bin/" "$@" )
}

modir() { ( cd "$here/$1" && go list -m -f '{{.Dir}}' "$2" ); }

build_etcd() {
  gobuild etcd "$1" "" "" -- go.etcd.io/etcd/server/v3
  mv "$1/bin/server" "$1/bin/etcd"
}

build_kubernetes() {
  local v=$K8S_VERSION minor; minor=$(echo "$v" | cut -d. -f2)
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  gobuild kubernetes "$1" "$ld" "" -- k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
}

build_kwok() {
  local ld="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
  gobuild kwok "$1" "$ld" "" -- sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
}

build_kustomize() {
  gobuild kustomize "$1" "-X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" "" -- \
    sigs.k8s.io/kustomize/kustomize/v5
}

build_pulumi() {
  local ld="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
  gobuild pulumi "$1" "$ld" "osusergo,grpcnotrace" -- github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  # The Python language host (module .../sdk/python/cmd/pulumi-language-python/v3) is refused by
  # the module proxy here (403 "This module version is not available" at every version), so it is
  # not built: fleet runs its program inline through the Automation API, whose Python SDK serves
  # the language runtime in-process. The exec script and the dynamic-provider plugin ship in sdk/v3.
  local sdk; sdk=$(modir pulumi github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$1/bin/"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$1/bin/"
}

build_flux() {
  local out=$1/share/flux
  mkdir -p "$out"
  for m in source-controller kustomize-controller; do
    local d; d=$(modir flux "github.com/fluxcd/$m")
    mkdir -p "$out/$m/crds" "$out/$m/manager"
    cp "$d"/config/crd/bases/*.yaml "$out/$m/crds/"
    cp "$d"/config/manager/*.yaml "$out/$m/manager/"
  done
  chmod -R u+w "$out"
  cat > "$out/VERSIONS" <<V
source-controller $FLUX_SOURCE_VERSION
kustomize-controller $FLUX_KUSTOMIZE_VERSION
V
}

link_family() {  # symlink a family's build into $cache/bin and $cache/share
  local dir=$1
  if [ -d "$dir/bin" ]; then for f in "$dir"/bin/*; do ln -sfn "$f" "$cache/bin/$(basename "$f")"; done; fi
  if [ -d "$dir/share" ]; then for f in "$dir"/share/*; do ln -sfn "$f" "$cache/share/$(basename "$f")"; done; fi
}

main() {
  local families=("$@"); [ ${#families[@]} -gt 0 ] || families=("${families_all[@]}")
  local failed=()
  for fam in "${families[@]}"; do
    [ -d "$here/$fam" ] || { say "✗ unknown toolchain family \"$fam\""; exit 2; }
    local h dir; h=$(family_hash "$fam"); dir="$cache/$fam/$h"
    if [ -f "$dir/.done" ]; then
      say "✔ $fam up to date ($dir)"; link_family "$dir"; continue
    fi
    say "► building $fam into $dir"
    local t0=$SECONDS log="$cache/logs/$fam.log"
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
    if ( "build_$fam" "$dir.tmp" ) >"$log" 2>&1; then
      rm -rf "$dir"; mv "$dir.tmp" "$dir"; echo "$((SECONDS - t0))" > "$dir/.done"
      say "✔ built $fam in $((SECONDS - t0))s: $(ls "$dir/bin" 2>/dev/null | tr '\n' ' ')"
      link_family "$dir"
    else
      say "✗ building $fam failed after $((SECONDS - t0))s; last lines of $log:"
      tail -n 20 "$log" >&2
      failed+=("$fam")
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then say "✗ toolchain incomplete: ${failed[*]} failed"; exit 1; fi
  say "✔ toolchain ready in $cache/bin"
}

main "$@"
