// Wrapper that pins the Flux controllers whose module zips carry the CRDs and manager manifests
// fleet installs on local clusters (see tools/build.sh, family "flux").
module fleet.local/tools/flux

go 1.26.0

require (
	github.com/fluxcd/kustomize-controller v1.9.6
	github.com/fluxcd/source-controller v1.9.6
)
