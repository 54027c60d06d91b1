#!/usr/bin/env bash
# The fresh-machine check: the README's two commands, from a clean clone, with empty caches.
#
#   tools/fresh-check.sh [--cold "FAMILY ..."|all] [--keep]      (make fresh-check COLD="...")
#
# Clones this repository's HEAD into a temporary directory and runs `make drill`, then `make test`
# there, as a new user would, with:
#   - an empty Go module cache and build cache (GOMODCACHE, GOCACHE, GOPATH in the temp dir),
#   - an empty toolchain directory (FLEET_TOOLCHAIN_DIR in the temp dir),
#   - no virtualenv and no pip cache (PIP_NO_CACHE_DIR),
#   - an empty HOME (so no git identity, no ~/.pulumi, no ~/.kwok) and an empty FLEET_HOME.
# The whole toolchain takes about 26 minutes cold on 2 cores (measured 2026-12-07). `--cold` names the families built from
# nothing (default: all); every other family is taken, hard-linked, from the warm cache
# ($FLEET_TOOLCHAIN_DIR or ~/.cache/fleet/toolchain) under the same hash, so it is the build the
# clone's tools/ would make. Times of every phase go to stdout and to $TMP/fresh-check.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
warm=${FLEET_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/toolchain}
cold=all keep=0
while [ $# -gt 0 ]; do
  case $1 in
    --cold) cold=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: tools/fresh-check.sh [--cold \"FAMILY ...\"|all] [--keep]" >&2; exit 2 ;;
  esac
done
[ -z "$(git -C "$here" status --porcelain --untracked-files=no)" ] ||
  echo "⚠ the working tree has uncommitted changes: the check runs HEAD ($(git -C "$here" rev-parse --short HEAD)), not them" >&2

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fleet-fresh.XXXXXX")
cleanup() {
  if [ $keep = 1 ]; then echo "kept $tmp" >&2; return; fi
  chmod -R u+w "$tmp" 2>/dev/null || true  # the Go module cache is read-only
  rm -rf "$tmp"
}
trap cleanup EXIT
report=$tmp/fresh-check.txt
log() { printf '%s\n' "$*" | tee -a "$report"; }

git clone -q --no-local "$here" "$tmp/fleet"
mkdir -p "$tmp/home" "$tmp/toolchain"
export HOME=$tmp/home GOPATH=$tmp/gopath GOMODCACHE=$tmp/gopath/pkg/mod GOCACHE=$tmp/gocache \
  FLEET_TOOLCHAIN_DIR=$tmp/toolchain FLEET_HOME=$tmp/fleet-home PIP_NO_CACHE_DIR=1 \
  XDG_CACHE_HOME=$tmp/home/.cache XDG_DATA_HOME=$tmp/home/.local/share XDG_CONFIG_HOME=$tmp/home/.config
unset VIRTUAL_ENV PULUMI_HOME PULUMI_BACKEND_URL KUBECONFIG

log "fresh-machine check of $(git -C "$here" rev-parse --short HEAD) in $tmp ($(date -u +%FT%TZ), $(nproc) cores)"
if [ "$cold" != all ]; then
  # Families not named cold come from the warm cache, under the hash the clone computes for them.
  for fam in etcd kubernetes kwok kustomize pulumi flux pulumi-kubernetes fluxbuild seaweedfs registry; do
    case " $cold " in *" $fam "*) continue ;; esac
    [ -d "$warm/$fam" ] || { log "✗ $fam is not in the warm cache $warm: build it first or name it cold"; exit 1; }
    mkdir -p "$tmp/toolchain/$fam"
    for d in "$warm/$fam"/*/; do [ -f "$d/.done" ] && cp -al "${d%/}" "$tmp/toolchain/$fam/"; done
  done
  log "cold families: $cold (the others hard-linked from $warm)"
else
  log "cold families: all"
fi

phase() {  # phase NAME COMMAND...: run in the clone, time it, stop at the first failure
  local name=$1 t0=$SECONDS rc; shift
  log "► $name: $*"
  set +e
  ( cd "$tmp/fleet" && "$@" ) > "$tmp/$name.log" 2>&1
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    log "✗ $name failed (exit $rc) after $((SECONDS - t0))s; last lines of its log:"
    tail -n 30 "$tmp/$name.log" | tee -a "$report"
    keep=1
    exit 1
  fi
  log "✔ $name passed in $((SECONDS - t0))s"
}

phase venv make venv
phase toolchain make toolchain
for fam in "$tmp"/toolchain/*/*/.done; do
  f=${fam#"$tmp/toolchain/"}; f=${f%%/*}
  case " $cold " in *" $f "*|" all ") log "    $f: built cold in $(cat "$fam")s" ;; *) log "    $f: warm" ;; esac
done
phase drill make drill
phase test make test
log "✔ the README's two commands pass on a fresh clone with empty caches ($SECONDS s in all)"
grep -E '^[0-9]+ passed|passed' "$tmp/test.log" | tail -n 2 | tee -a "$report"
cp "$report" "${TMPDIR:-/tmp}/fleet-fresh-check-last.txt"
