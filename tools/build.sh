#!/usr/bin/env bash
# Build fleet's local toolchain from Go modules into a cache outside the repo.
#
#   tools/build.sh [FAMILY ...]     (default: every family)
#   tools/build.sh --verify [FAMILY ...]   check the built families' outputs, build nothing
#
# Cache: $FLEET_TOOLCHAIN_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/fleet/toolchain).
# Each family is built into $CACHE/<family>/<hash>/ where <hash> covers the family's wrapper files,
# its build and check functions and the version pins they name, so a warm run only checks stamps.
# $CACHE/bin/ holds symlinks to the current build of every tool, $CACHE/share/ the non-Go files
# (Flux manifests, pulumi scripts).
#
# A family is stamped done (.done) only when every step of its build succeeded (each step runs
# under `set -e`; a failed copy fails the family) and its check passed: every binary answers its
# version flag, every manifest folder holds parseable YAML of the kinds fleet installs. A family
# whose stamped build no longer passes its check (a corrupted cache) is rebuilt.
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
PULUMI_KUBERNETES_VERSION=4.32.0
# fleet-build: Flux's kustomize library and Helm's SDK (the versions tools/fluxbuild/go.mod requires)
FLUX_PKG_KUSTOMIZE_VERSION=v1.41.0
HELM_VERSION=v4.3.2
# `weed version` of the pseudo-version tools/seaweedfs/go.mod pins (v0.0.0-20261109003541-7506e5f91cd6)
SEAWEEDFS_VERSION=4.53
# the OCI registry of the test bed and the client tests push charts with (what tools/registry/go.mod requires)
REGISTRY_VERSION=v3.1.2
ORAS_VERSION=1.3.6

families_all=(etcd kubernetes kwok kustomize pulumi flux pulumi-kubernetes fluxbuild seaweedfs registry)

say() { printf '%s\n' "$*" >&2; }
die() { say "✗ $*"; exit 1; }

fname() { echo "${1//-/_}"; }  # family name -> function suffix

family_hash() {
  # The family's wrapper files, its build and check functions, and the value of every *_VERSION pin
  # those functions name: changing another family's pin does not rebuild this one.
  local f; f=$(fname "$1")
  local body; body=$(declare -f "build_$f" "check_$f")
  ( cd "$here/$1" && find . -type f ! -name '*.log' | LC_ALL=C sort | xargs sha256sum
    printf '%s\n' "$body"
    for v in $(grep -oE '\b[A-Z0-9_]+_VERSION\b' <<<"$body" | sort -u); do echo "$v=${!v}"; done
  ) | sha256sum | cut -c1-12
}

gobuild() {  # gobuild FAMILY OUTDIR LDFLAGS TAGS -- PKG...
  local fam=$1 out=$2 ldflags=$3 tags=$4; shift 5
  mkdir -p "$out/bin"
  ( cd "$here/$fam" && go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$out/bin/" "$@" )
}

modir() {  # modir FAMILY MODULE: the module's directory in the module cache, downloaded first
  local d
  ( cd "$here/$1" && go mod download "$2" ) || die "go mod download $2 failed"
  d=$( cd "$here/$1" && go list -m -f '{{.Dir}}' "$2" )
  [ -n "$d" ] && [ -d "$d" ] || die "module $2 has no directory in the module cache after download"
  echo "$d"
}

need_version() {  # need_version BIN WANT ARGS...: BIN runs with ARGS and prints WANT
  local bin=$1 want=$2 out; shift 2
  [ -x "$bin" ] || die "$(basename "$bin") was not built"
  out=$("$bin" "$@" 2>&1) || die "$(basename "$bin") $* failed: $(head -c 300 <<<"$out")"
  grep -qF -- "$want" <<<"$out" || die "$(basename "$bin") $* printed \"$(head -c 200 <<<"$out")\", not $want"
}

need_help() {  # need_help BIN FLAG: BIN --help runs and lists FLAG
  local out
  [ -x "$1" ] || die "$(basename "$1") was not built"
  out=$("$1" --help 2>&1 || true)
  grep -qF -- "$2" <<<"$out" || die "$(basename "$1") --help does not list $2: $(head -c 200 <<<"$out")"
}

need_manifests() {  # need_manifests DIR KIND: DIR holds YAML files, one at least of kind KIND
  local dir=$1 kind=$2 f
  compgen -G "$dir/*.yaml" >/dev/null || die "no manifests in $dir"
  for f in "$dir"/*.yaml; do
    [ -s "$f" ] || die "empty manifest $f"
    grep -qE '^apiVersion: ' "$f" && grep -qE '^kind: ' "$f" || die "$f is not a Kubernetes manifest"
  done
  grep -lqE "^kind: $kind\$" "$dir"/*.yaml || die "no $kind in $dir"
}

build_etcd() {
  gobuild etcd "$1" "" "" -- go.etcd.io/etcd/server/v3
  mv "$1/bin/server" "$1/bin/etcd"
}
check_etcd() { need_version "$1/bin/etcd" "etcd Version: ${ETCD_VERSION#v}" --version; }

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
check_kubernetes() {
  local b
  for b in kube-apiserver kube-controller-manager kube-scheduler; do need_version "$1/bin/$b" "$K8S_VERSION" --version; done
  need_version "$1/bin/kubectl" "$K8S_VERSION" version --client
}

build_kwok() {
  local ld="-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${K8S_VERSION#v}"
  gobuild kwok "$1" "$ld" "" -- sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
}
check_kwok() {
  need_version "$1/bin/kwok" "${KWOK_VERSION#v}" --version
  need_version "$1/bin/kwokctl" "${KWOK_VERSION#v}" --version
}

build_kustomize() {
  gobuild kustomize "$1" "-X sigs.k8s.io/kustomize/api/provenance.version=kustomize/$KUSTOMIZE_VERSION" "" -- \
    sigs.k8s.io/kustomize/kustomize/v5
}
check_kustomize() { need_version "$1/bin/kustomize" "$KUSTOMIZE_VERSION" version; }

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
check_pulumi() {
  need_version "$1/bin/pulumi" "$PULUMI_VERSION" version
  [ -s "$1/bin/pulumi-language-python-exec" ] || die "pulumi-language-python-exec missing"
  [ -s "$1/bin/pulumi-resource-pulumi-python" ] || die "pulumi-resource-pulumi-python missing"
}

build_flux() {
  # The two controllers, run as processes beside every local cluster, in one go build...
  gobuild flux "$1" "" "" -- github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller
  # ...and their CRDs and manager manifests, copied out of the module zips.
  local out=$1/share/flux m d
  for m in source-controller kustomize-controller; do
    d=$(modir flux "github.com/fluxcd/$m@$FLUX_SOURCE_VERSION")
    mkdir -p "$out/$m/crds" "$out/$m/manager"
    cp "$d"/config/crd/bases/*.yaml "$out/$m/crds/"
    cp "$d"/config/manager/*.yaml "$out/$m/manager/"
  done
  chmod -R u+w "$out"
  printf 'source-controller %s\nkustomize-controller %s\n' "$FLUX_SOURCE_VERSION" "$FLUX_KUSTOMIZE_VERSION" > "$out/VERSIONS"
}
check_flux() {
  local m
  for m in source-controller kustomize-controller; do
    need_manifests "$1/share/flux/$m/crds" CustomResourceDefinition
    need_manifests "$1/share/flux/$m/manager" Deployment
    [ -f "$1/share/flux/$m/manager/kustomization.yaml" ] || die "$m/manager/kustomization.yaml missing"
  done
  # The controllers have no version flag: --help proves each binary starts and parses its flags.
  need_help "$1/bin/source-controller" --storage-adv-addr
  need_help "$1/bin/kustomize-controller" --no-remote-bases
  grep -qx "source-controller $FLUX_SOURCE_VERSION" "$1/share/flux/VERSIONS" || die "flux VERSIONS missing"
}

build_pulumi_kubernetes() {
  # The upstream main embeds files that `go generate` writes; a copy of the wrapper gets the
  # module's committed schema and mapping beside its own main (see tools/pulumi-kubernetes/main.go).
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4 d src=$1/src
  d=$(modir pulumi-kubernetes "$mod")
  mkdir -p "$src" "$1/bin"
  cp "$here/pulumi-kubernetes"/{go.mod,go.sum,main.go} "$src/"
  cp "$d/cmd/pulumi-resource-kubernetes/schema.json" "$d/cmd/pulumi-resource-kubernetes/terraform-mapping.json" "$src/"
  chmod u+w "$src"/*
  ( cd "$src" && go build -trimpath -ldflags "-s -w -X $mod/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
      -o "$1/bin/pulumi-resource-kubernetes" . )
  rm -rf "$src"
}
check_pulumi_kubernetes() {
  # A plugin has no version flag; it serves gRPC and prints its port when started.
  [ -x "$1/bin/pulumi-resource-kubernetes" ] || die "pulumi-resource-kubernetes was not built"
  local out=$1/.serve-check pid i port=""
  "$1/bin/pulumi-resource-kubernetes" >"$out" 2>/dev/null & pid=$!
  for i in $(seq 300); do port=$(head -n1 "$out"); [ -n "$port" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$out"
  [[ "$port" =~ ^[0-9]+$ ]] || die "pulumi-resource-kubernetes did not start serving (printed \"$port\")"
  grep -qaF "$PULUMI_KUBERNETES_VERSION" "$1/bin/pulumi-resource-kubernetes" || die "pulumi-resource-kubernetes is not stamped $PULUMI_KUBERNETES_VERSION"
  echo "$PULUMI_KUBERNETES_VERSION" > "$1/bin/.pulumi-resource-kubernetes.version"
}

build_fluxbuild() {
  # fleet's renderer (tools/fluxbuild/main.go): Flux's kustomize build on its confined filesystem, and
  # Helm's template, served as JSON lines.
  gobuild fluxbuild "$1" "" "" -- .
  mv "$1/bin/fluxbuild" "$1/bin/fleet-build"
}
check_fluxbuild() {
  local b=$1/bin/fleet-build t out
  need_version "$b" "fluxcd/pkg/kustomize $FLUX_PKG_KUSTOMIZE_VERSION" version
  need_version "$b" "helm $HELM_VERSION" version
  # A tiny build: one ConfigMap through a kustomization with a name prefix; and a file outside the
  # root, which the confined filesystem must refuse.
  t=$(mktemp -d); mkdir -p "$t/app"
  printf 'namePrefix: p-\nresources: [cm.yaml]\n' > "$t/app/kustomization.yaml"
  printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: check\n' > "$t/app/cm.yaml"
  out=$(printf '{"id":"1","op":"build","root":"%s","path":"app"}\n' "$t" | "$b" serve 2>&1) || true
  mkdir -p "$t/esc"; printf 'configMapGenerator:\n- name: x\n  files: [/etc/hostname]\n' > "$t/esc/kustomization.yaml"
  local esc; esc=$(printf '{"id":"2","op":"build","root":"%s","path":"esc"}\n' "$t" | "$b" serve 2>&1) || true
  # and a one-template chart through Helm
  mkdir -p "$t/chart/templates"; printf 'apiVersion: v2\nname: c\nversion: 0.1.0\n' > "$t/chart/Chart.yaml"
  printf 'kind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Values.n }}\n' > "$t/chart/templates/cm.yaml"
  local tpl; tpl=$(printf '{"id":"3","op":"template","root":"%s","chart":"chart","values":{"n":"v"},"release":"r","namespace":"ns"}\n' "$t" | "$b" serve 2>&1) || true
  rm -rf "$t"
  grep -qF 'name: r-v' <<<"$tpl" || die "fleet-build did not template a tiny chart: $(head -c 300 <<<"$tpl")"
  grep -qF '"ok":true' <<<"$out" && grep -qF 'name: p-check' <<<"$out" || die "fleet-build did not build a tiny overlay: $(head -c 300 <<<"$out")"
  grep -qF 'fs-security-constraint' <<<"$esc" || die "fleet-build read a file outside its root: $(head -c 300 <<<"$esc")"
}

build_seaweedfs() {
  # The S3-compatible server a team's shared Pulumi backend runs on locally (`fleet local backend`,
  # the S3 tests). One binary, `weed`; its `mini` subcommand serves S3 with its own master/volume/filer.
  gobuild seaweedfs "$1" "" "" -- github.com/seaweedfs/seaweedfs/weed
}
check_seaweedfs() {
  need_version "$1/bin/weed" "$SEAWEEDFS_VERSION" version
  need_help "$1/bin/weed" "mini"
}

build_registry() {
  # CNCF Distribution, the OCI registry OCI Helm charts are pushed to and pulled from in tests, and the
  # ORAS CLI the tests push charts with (as `helm push` lays them out), in one go build.
  gobuild registry "$1" "-X github.com/distribution/distribution/v3/version.version=$REGISTRY_VERSION" "" -- \
    github.com/distribution/distribution/v3/cmd/registry oras.land/oras/cmd/oras
}
check_registry() {
  need_version "$1/bin/registry" "$REGISTRY_VERSION" --version
  need_version "$1/bin/oras" "$ORAS_VERSION" version
  # It serves: a config on a free loopback port, in-memory storage; /v2/ answers 200.
  local t pid i port code=""
  t=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.1:%s\n' "$port" > "$t/config.yml"
  "$1/bin/registry" serve "$t/config.yml" >"$t/log" 2>&1 & pid=$!
  for i in $(seq 100); do
    code=$(python3 -c 'import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=1).status)' "http://127.0.0.1:$port/v2/" 2>/dev/null) && break
    kill -0 $pid 2>/dev/null || break; sleep 0.1
  done
  kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  local log; log=$(head -c 300 "$t/log"); rm -rf "$t"
  [ "$code" = 200 ] || die "registry did not serve /v2/ on 127.0.0.1:$port: $log"
}

file_manifest() {  # every file of a build with its size: what a warm run compares, in milliseconds
  ( cd "$1" && find . -type f ! -name .done ! -name .files -printf '%s %p\n' | LC_ALL=C sort )
}

manifest_problem() {  # prints why a stamped build is not what was built, or nothing
  [ -f "$1/.files" ] || { echo "has no file list"; return; }
  local now; now=$(file_manifest "$1")
  [ "$now" = "$(cat "$1/.files")" ] || echo "differs from what was built: $(diff <(cat "$1/.files") <(echo "$now") | grep -E '^[<>]' | head -n 2 | tr '\n' ' ')"
}

link_family() {  # symlink a family's build into $cache/bin and $cache/share
  local dir=$1
  if [ -d "$dir/bin" ]; then for f in "$dir"/bin/*; do ln -sfn "$f" "$cache/bin/$(basename "$f")"; done; fi
  if [ -d "$dir/share" ]; then for f in "$dir"/share/*; do ln -sfn "$f" "$cache/share/$(basename "$f")"; done; fi
}

run_step() {  # run_step LOG FUNC ARGS...: FUNC under set -e in a subshell; its status, not ignored
  local log=$1 rc; shift
  set +e
  ( set -euo pipefail; "$@" ) >>"$log" 2>&1
  rc=$?
  set -e
  return $rc
}

main() {
  local verify_only=0
  if [ "${1:-}" = "--verify" ]; then verify_only=1; shift; fi
  local families=("$@"); [ ${#families[@]} -gt 0 ] || families=("${families_all[@]}")
  local failed=()
  for fam in "${families[@]}"; do
    [ -d "$here/$fam" ] || { say "✗ unknown toolchain family \"$fam\""; exit 2; }
    local h dir f; h=$(family_hash "$fam"); dir="$cache/$fam/$h"; f=$(fname "$fam")
    local log="$cache/logs/$fam.log"
    if [ -f "$dir/.done" ]; then
      local problem; problem=$(manifest_problem "$dir")
      if [ -z "$problem" ]; then
        say "✔ $fam up to date ($dir)"; link_family "$dir"; continue
      fi
      say "⚠ $fam is stamped built but $problem: rebuilding"
      rm -f "$dir/.done"
    fi
    if [ $verify_only = 1 ]; then say "✗ $fam is not built"; failed+=("$fam"); continue; fi
    say "► building $fam into $dir"
    local t0=$SECONDS
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"; : > "$log"
    if run_step "$log" "build_$f" "$dir.tmp" && run_step "$log" "check_$f" "$dir.tmp"; then
      rm -rf "$dir"; mv "$dir.tmp" "$dir"
      file_manifest "$dir" > "$dir/.files"
      echo "$((SECONDS - t0))" > "$dir/.done"  # the stamp comes last
      say "✔ built $fam in $((SECONDS - t0))s: $(ls "$dir/bin" 2>/dev/null | tr '\n' ' ')"
      link_family "$dir"
    else
      say "✗ building $fam failed after $((SECONDS - t0))s; last lines of $log:"
      tail -n 20 "$log" >&2
      rm -rf "$dir.tmp"
      failed+=("$fam")
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then say "✗ toolchain incomplete: ${failed[*]} failed (rerun: tools/build.sh ${failed[*]})"; exit 1; fi
  say "✔ toolchain ready in $cache/bin"
}

main "$@"
