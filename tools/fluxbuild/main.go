// fleet-build: fleet's renderer, built on Flux's and Helm's own libraries.
//
// It serves requests on stdin, one JSON object a line, and answers each with one JSON line on stdout:
//
//	{"id":"1","op":"build","root":"/tmp/x","path":"environments/dev"}
//	{"id":"2","op":"template","root":"/tmp/c","chart":"podinfo","values":{...},"release":"r","namespace":"ns"}
//	{"id":"3","op":"substitute","docs":["apiVersion: v1\nkind: ConfigMap\n..."],"vars":{"CLUSTER":"eu-1"}}
//	{"id":"4","op":"version"}
//	{"id":"5","op":"oci_resolve",...}, {"id":"6","op":"oci_blob",...}  (OCI chart sources: oci.go)
//	-> {"id":"1","ok":true,"yaml":"..."}  or  {"id":"1","ok":false,"kind":"input","error":"..."}
//
// "build" is kustomize-controller's build: github.com/fluxcd/pkg/kustomize's Build options (plugins
// disabled, load restrictions off as Flux sets them; resources in kustomize's legacy order, as the CLI
// prints them) on Flux's secure on-disk filesystem rooted at "root", so no file
// outside the root can be opened, globbed or walked, whatever the kustomization says; remote bases are
// off (the filesystem refuses the clone directories) and the process has no network and no PATH.
// Every file kustomize reads is first checked here (size, YAML aliases and their expansion, nesting
// depth), before kustomize parses it. "template" is `helm template` through helm.sh/helm/v4's install
// action in client-only dry-run mode: no plugins, no post-renderer, no network, the chart read only
// from inside "root".
//
// Limits: a wall-clock timeout per request, an output cap, and a heap budget watched while the request
// runs. A request over its time or heap budget is answered, then the process exits with status 3 (the
// runaway goroutine cannot be stopped otherwise); the caller starts a new process for the next request.
// Errors are cut to a few lines (at most about 500 characters), paths relative to the root.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/kustomize"
	securefs "github.com/fluxcd/pkg/kustomize/filesys"
	yaml "go.yaml.in/yaml/v3"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	kustypes "sigs.k8s.io/kustomize/api/types"
	kfilesys "sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	sigsyaml "sigs.k8s.io/yaml"
)

// Defaults of the limits; a request may lower or raise each one.
const (
	defaultTimeout    = 60 * time.Second
	defaultMaxOutput  = 64 << 20  // bytes of YAML in one answer
	defaultMaxHeap    = 1 << 30   // bytes of live heap while a request runs
	defaultMaxFile    = 8 << 20   // bytes of one file kustomize reads
	defaultMaxDepth   = 200       // nesting levels of one YAML document (aliases followed)
	defaultMaxAliases = 10_000    // alias nodes in one file
	defaultMaxNodes   = 2_000_000 // YAML nodes of one file once its aliases are expanded
	maxRequest        = 64 << 20  // bytes of one request line
	maxErrorChars     = 500
	maxErrorLines     = 4
)

type request struct {
	ID   string `json:"id"`
	Op   string `json:"op"`
	Root string `json:"root"`
	// build
	Path string `json:"path"`
	// template
	Chart       string          `json:"chart"`
	Values      json.RawMessage `json:"values"`
	Release     string          `json:"release"`
	Namespace   string          `json:"namespace"`
	IncludeCRDs bool            `json:"include_crds"`
	KubeVersion string          `json:"kube_version"`
	// the chart's default values: replaced by chart_values, or by the merge of values_files (files of the
	// chart, in order, as source-controller merges a HelmChart's spec.valuesFiles)
	ChartValues              json.RawMessage `json:"chart_values"`
	ValuesFiles              []string        `json:"values_files"`
	IgnoreMissingValuesFiles bool            `json:"ignore_missing_values_files"`
	// oci_resolve, oci_blob (oci.go)
	Ref          string   `json:"ref"`
	Helm         bool     `json:"helm"`
	Version      string   `json:"version"`
	Tag          string   `json:"tag"`
	Digest       string   `json:"digest"`
	Semver       string   `json:"semver"`
	SemverFilter string   `json:"semver_filter"`
	MediaTypes   []string `json:"media_types"`
	PlainHTTP    bool     `json:"plain_http"`
	Size         int64    `json:"size"`
	// substitute: one object a document, and the variables (postBuild.substitute)
	Docs []string          `json:"docs"`
	Vars map[string]string `json:"vars"`
	// limits (0: the default)
	TimeoutMS  int64 `json:"timeout_ms"`
	MaxOutput  int64 `json:"max_output"`
	MaxHeap    int64 `json:"max_heap"`
	MaxFile    int64 `json:"max_file"`
	MaxDepth   int   `json:"max_depth"`
	MaxAliases int   `json:"max_aliases"`
	MaxNodes   int   `json:"max_nodes"`
}

type answer struct {
	ID string `json:"id"`
	OK bool   `json:"ok"`
	// "input" (the repo's files are wrong or over a limit: the user's to fix), "limit" (the request ran
	// out of time or memory), "internal" (a bad request or a bug)
	Kind     string            `json:"kind,omitempty"`
	Error    string            `json:"error,omitempty"`
	YAML     string            `json:"yaml,omitempty"`
	Docs     []string          `json:"docs,omitempty"`
	Versions map[string]string `json:"versions,omitempty"`
	// oci_resolve, oci_blob
	Tag      string `json:"tag,omitempty"`
	Manifest string `json:"manifest,omitempty"`
	Layer    *layer `json:"layer,omitempty"`
	Data     []byte `json:"data,omitempty"`
}

// inputError is a problem of the repo's files, already worded for the user.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "version" || os.Args[1] == "--version") {
		v := versions()
		fmt.Printf("fleet-build fluxcd/pkg/kustomize %s kustomize/api %s helm %s\n",
			v["github.com/fluxcd/pkg/kustomize"], v["sigs.k8s.io/kustomize/api"], v["helm.sh/helm/v4"])
		return
	}
	if len(os.Args) > 1 && os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: fleet-build [serve|version]  (serve: JSON requests on stdin, one a line)")
		os.Exit(2)
	}
	isolate()
	os.Exit(serve(os.Stdin, os.Stdout))
}

// isolate takes away what a build must never use: the network and other programs.
func isolate() {
	http.DefaultTransport = refusingTransport{}
	http.DefaultClient.Transport = refusingTransport{}
	_ = os.Setenv("PATH", "")
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMaxHeap)
	}
}

type refusingTransport struct{}

func (refusingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return nil, &inputError{fmt.Sprintf("remote resource %s refused: builds read only the repository", r.URL.Redacted())}
}

func versions() map[string]string {
	out := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			v := d.Version
			if d.Replace != nil {
				v = d.Replace.Version
			}
			out[d.Path] = v
		}
		out["go"] = bi.GoVersion
	}
	return out
}

func serve(in io.Reader, out io.Writer) int {
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	send := func(a answer) {
		_ = enc.Encode(a)
		_ = w.Flush()
	}
	for {
		line, err := readLine(r)
		if err == io.EOF {
			return 0
		}
		if err != nil {
			send(answer{Kind: "internal", Error: cut(err.Error(), "")})
			return 2
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var req request
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			send(answer{Kind: "internal", Error: cut("bad request: "+err.Error(), "")})
			continue
		}
		a, fatal := run(req)
		a.ID = req.ID
		send(a)
		if fatal {
			return 3
		}
	}
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxRequest {
			return nil, fmt.Errorf("request over %d bytes", maxRequest)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			return buf, nil
		}
		return buf, err
	}
}

// run answers one request within its time and heap budget; fatal says the process must end (a request
// overran, and its goroutine may still be running).
func run(req request) (answer, bool) {
	timeout := defaultTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	maxHeap := pick64(req.MaxHeap, defaultMaxHeap)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The collector keeps the heap under the budget while it can (so garbage alone never trips the
	// watchdog); what stays above it is live, and the request is stopped.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(maxHeap))

	done := make(chan answer, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- answer{Kind: "internal", Error: cut(fmt.Sprintf("builder panic: %v", p), req.Root)}
			}
		}()
		done <- handle(ctx, req)
	}()

	over := watchHeap(ctx, maxHeap)
	select {
	case a := <-done:
		return a, false
	case <-ctx.Done():
		select { // a result that raced the deadline still wins
		case a := <-done:
			return a, false
		default:
		}
		return answer{Kind: "limit", Error: cut(fmt.Sprintf("%s took longer than %s: stopped", what(req), timeout), req.Root)}, true
	case used := <-over:
		return answer{Kind: "limit", Error: fmt.Sprintf("%s used more than %d MiB of memory (%d MiB): stopped",
			what(req), maxHeap>>20, used>>20)}, true
	}
}

func what(req request) string {
	switch req.Op {
	case "build":
		return "build of " + req.Path
	case "template":
		return "helm template of " + req.Chart
	case "oci_resolve", "oci_blob":
		return "fetching oci://" + req.Ref
	}
	return req.Op
}

// watchHeap reports on the returned channel once the live heap goes over max, until ctx ends.
func watchHeap(ctx context.Context, max int64) <-chan int64 {
	over := make(chan int64, 1)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				metrics.Read(sample)
				if used := int64(sample[0].Value.Uint64()); used > max {
					over <- used
					return
				}
			}
		}
	}()
	return over
}

func handle(ctx context.Context, req request) answer {
	switch req.Op {
	case "version":
		return answer{OK: true, Versions: versions()}
	case "build":
		return build(ctx, req)
	case "template":
		return template(ctx, req)
	case "substitute":
		return substitute(ctx, req)
	case "oci_resolve":
		return ociResolve(ctx, req)
	case "oci_blob":
		return ociBlob(ctx, req)
	}
	return answer{Kind: "internal", Error: fmt.Sprintf("unknown op %q (build, template, substitute, oci_resolve, oci_blob, version)", req.Op)}
}

func pick64(v, d int64) int64 {
	if v > 0 {
		return v
	}
	return d
}

func pick(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// checkRoot: the root must be an absolute, existing directory, never "/".
func checkRoot(root string) (string, error) {
	if root == "" || !filepath.IsAbs(root) {
		return "", fmt.Errorf("root %q is not an absolute path", root)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("root %q: %v", root, err)
	}
	if real == "/" {
		return "", errors.New(`root "/" refused`)
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return "", fmt.Errorf("root %q is not a directory", root)
	}
	return real, nil
}

// inside joins rel to root and refuses a result outside it (before any symlink: the secure
// filesystem checks those where files are opened).
func inside(root, rel string) (string, error) {
	p := filepath.Join(root, rel)
	if p != root && !strings.HasPrefix(p, root+string(filepath.Separator)) {
		return "", &inputError{fmt.Sprintf("path %q is outside the repository", rel)}
	}
	return p, nil
}

// ---- build ------------------------------------------------------------------------------------

func build(ctx context.Context, req request) answer {
	root, err := checkRoot(req.Root)
	if err != nil {
		return answer{Kind: "internal", Error: err.Error()}
	}
	dir, err := inside(root, req.Path)
	if err != nil {
		return fail(err, root)
	}
	// Remote bases off, as kustomize-controller's --no-remote-bases: MakeFsOnDiskSecure allows nothing
	// but the root (MakeFsOnDiskSecureBuild would also allow the clone directories of remote bases).
	sfs, err := securefs.MakeFsOnDiskSecure(root)
	if err != nil {
		return answer{Kind: "internal", Error: cut(err.Error(), root)}
	}
	fs := &checkedFS{FileSystem: sfs, root: root, lim: limitsOf(req)}
	res, err := buildLegacyOrder(fs, dir)
	if v := fs.violation(); v != nil {
		return fail(v, root) // the first file over a limit, not whatever kustomize made of it
	}
	if err != nil {
		return fail(err, root)
	}
	if ctx.Err() != nil {
		return answer{Kind: "limit", Error: "build stopped"}
	}
	text, err := res.AsYaml()
	if err != nil {
		return fail(err, root)
	}
	if max := pick64(req.MaxOutput, defaultMaxOutput); int64(len(text)) > max {
		return answer{Kind: "input", Error: fmt.Sprintf("build of %s is %d bytes, over the %d-byte output limit", req.Path, len(text), max)}
	}
	return answer{OK: true, YAML: string(text)}
}

var (
	buildMu sync.Mutex
	// builtinsOnly: the global OpenAPI schema holds the builtin Kubernetes schema and nothing else
	// (what Flux's Build sets up before every build); builtinVersion is what it then reports.
	builtinsOnly   bool
	builtinVersion = func() string { openapi.ResetOpenAPI(); return openapi.GetSchemaVersion() }()
)

// buildLegacyOrder is github.com/fluxcd/pkg/kustomize's Build (the same krusty options: load
// restrictions off, builtin plugins only; the same guards: one build at a time, a panic recovered,
// every build starting from the builtin OpenAPI schema alone) with two differences: the resources come
// in kustomize's legacy order, as the kustomize CLI prints them, unless the kustomization sets
// sortOptions (Flux's Build leaves them in input order and kustomize-controller applies in its own
// staged order, so the set is the same); and the builtin schema is parsed again only after a build
// that changed it (a kustomization's openapi field), not before every build (about 80 ms each).
func buildLegacyOrder(fs kfilesys.FileSystem, dir string) (res resmap.ResMap, err error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered from kustomize build panic: %v", r)
		}
	}()
	if !builtinsOnly {
		openapi.ResetOpenAPI()
		_ = openapi.Schema()
	}
	builtinsOnly = false // until this build is known to have left the schema alone
	opts := &krusty.Options{
		LoadRestrictions: kustypes.LoadRestrictionsNone,
		PluginConfig:     kustypes.DisabledPluginConfig(),
		Reorder:          krusty.ReorderOptionUnspecified,
	}
	res, err = krusty.MakeKustomizer(opts).Run(fs, dir)
	builtinsOnly = openapi.GetSchemaVersion() == builtinVersion
	return res, err
}

func fail(err error, root string) answer {
	var ie *inputError
	kind := "input"
	if errors.As(err, &ie) {
		return answer{Kind: kind, Error: cut(ie.msg, root)}
	}
	return answer{Kind: kind, Error: cut(err.Error(), root)}
}

type limits struct {
	maxFile    int64
	maxDepth   int
	maxAliases int
	maxNodes   int
}

func limitsOf(req request) limits {
	return limits{
		maxFile:    pick64(req.MaxFile, defaultMaxFile),
		maxDepth:   pick(req.MaxDepth, defaultMaxDepth),
		maxAliases: pick(req.MaxAliases, defaultMaxAliases),
		maxNodes:   pick(req.MaxNodes, defaultMaxNodes),
	}
}

// checkedFS is the secure filesystem with every file checked before kustomize reads it.
type checkedFS struct {
	kfilesys.FileSystem
	root string
	lim  limits
	mu   sync.Mutex
	bad  error
}

func (f *checkedFS) violation() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bad
}

func (f *checkedFS) refuse(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bad == nil {
		f.bad = err
	}
	return err
}

func (f *checkedFS) ReadFile(path string) ([]byte, error) {
	data, err := f.FileSystem.ReadFile(path) // the secure filesystem refuses a path outside the root
	if err != nil {
		return nil, err
	}
	if err := checkFile(f.rel(path), data, f.lim); err != nil {
		return nil, f.refuse(err)
	}
	return data, nil
}

func (f *checkedFS) Open(path string) (kfilesys.File, error) {
	if _, err := f.ReadFile(path); err != nil {
		return nil, err
	}
	return f.FileSystem.Open(path)
}

func (f *checkedFS) rel(path string) string {
	if r, err := filepath.Rel(f.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// checkFile refuses a file over the size limit, or YAML whose aliases or nesting would make kustomize
// exhaust the machine. Text that is not YAML is left to kustomize (a generator's data file, or an
// error it reports itself).
func checkFile(name string, data []byte, lim limits) error {
	if int64(len(data)) > lim.maxFile {
		return &inputError{fmt.Sprintf("%s: file is %d bytes, over the %d-byte limit", name, len(data), lim.maxFile)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	aliases, nodes := 0, 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if strings.Contains(err.Error(), "exceeded max depth") {
				return &inputError{fmt.Sprintf("%s: YAML nested deeper than %d levels", name, lim.maxDepth)}
			}
			return nil
		}
		w := walker{lim: lim, memo: map[*yaml.Node][2]int{}, open: map[*yaml.Node]bool{}}
		n, _, err := w.size(&doc, 0)
		if err != nil {
			return &inputError{fmt.Sprintf("%s: %v", name, err)}
		}
		aliases += w.aliases
		nodes += n
		if aliases > lim.maxAliases {
			return &inputError{fmt.Sprintf("%s: more than %d YAML aliases", name, lim.maxAliases)}
		}
		if nodes > lim.maxNodes {
			return &inputError{fmt.Sprintf("%s: YAML aliases expand to more than %d nodes", name, lim.maxNodes)}
		}
	}
}

type walker struct {
	lim     limits
	aliases int
	memo    map[*yaml.Node][2]int // node -> (expanded size, expanded height)
	open    map[*yaml.Node]bool
}

// size returns the node count and height of n once aliases are expanded, refusing a depth over the
// limit (counted from the document's top, through aliases) or an expansion over the node limit.
func (w *walker) size(n *yaml.Node, depth int) (int, int, error) {
	if depth > w.lim.maxDepth {
		return 0, 0, fmt.Errorf("YAML nested deeper than %d levels", w.lim.maxDepth)
	}
	if n.Kind == yaml.AliasNode {
		w.aliases++
		if n.Alias == nil {
			return 1, 1, nil
		}
		if w.open[n.Alias] {
			return 0, 0, errors.New("YAML alias refers to itself")
		}
		if m, ok := w.memo[n.Alias]; ok {
			if depth+m[1] > w.lim.maxDepth {
				return 0, 0, fmt.Errorf("YAML nested deeper than %d levels", w.lim.maxDepth)
			}
			return m[0], m[1], nil
		}
		return w.size(n.Alias, depth)
	}
	if m, ok := w.memo[n]; ok && depth+m[1] <= w.lim.maxDepth {
		return m[0], m[1], nil
	}
	w.open[n] = true
	defer delete(w.open, n)
	total, height := 1, 1
	for _, c := range n.Content {
		s, h, err := w.size(c, depth+1)
		if err != nil {
			return 0, 0, err
		}
		total += s
		if total > w.lim.maxNodes {
			return 0, 0, fmt.Errorf("YAML aliases expand to more than %d nodes", w.lim.maxNodes)
		}
		if h+1 > height {
			height = h + 1
		}
	}
	w.memo[n] = [2]int{total, height}
	return total, height, nil
}

// ---- post-build substitution --------------------------------------------------------------------

// substitute runs kustomize-controller's post-build substitution (SubstituteVariables, dry run: the
// variables are the request's, as spec.postBuild.substitute; strict: a variable without a value or a
// default is an error) on each document; a document that opts out
// (kustomize.toolkit.fluxcd.io/substitute: disabled) comes back as it was.
func substitute(ctx context.Context, req request) answer {
	vars := map[string]any{}
	for k, v := range req.Vars {
		vars[k] = v
	}
	ks := unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "fleet", "namespace": "fleet"},
		"spec":     map[string]any{"postBuild": map[string]any{"substitute": vars}},
	}}
	lim := limitsOf(req)
	factory := provider.NewDefaultDepProvider().GetResourceFactory()
	out := make([]string, 0, len(req.Docs))
	for i, doc := range req.Docs {
		name := fmt.Sprintf("document %d", i+1)
		if err := checkFile(name, []byte(doc), lim); err != nil {
			return fail(err, "")
		}
		res, err := factory.FromBytes([]byte(doc))
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err), "")
		}
		done, err := kustomize.SubstituteVariables(ctx, nil, ks, res,
			kustomize.SubstituteWithDryRun(true), kustomize.SubstituteWithStrict(true))
		if err != nil {
			return fail(fmt.Errorf("%s %s: %w", name, res.CurId(), err), "")
		}
		if done == nil {
			out = append(out, doc)
			continue
		}
		text, err := done.AsYAML()
		if err != nil {
			return fail(fmt.Errorf("%s: %w", name, err), "")
		}
		out = append(out, string(text))
	}
	return answer{OK: true, Docs: out}
}

// ---- helm template ----------------------------------------------------------------------------

func template(ctx context.Context, req request) answer {
	root, err := checkRoot(req.Root)
	if err != nil {
		return answer{Kind: "internal", Error: err.Error()}
	}
	path, err := inside(root, req.Chart)
	if err != nil {
		return fail(err, root)
	}
	if err := confinedTree(root, path); err != nil {
		return fail(err, root)
	}
	vals := map[string]any{}
	if len(req.Values) > 0 && string(req.Values) != "null" {
		if err := checkJSONDepth(req.Values, defaultMaxDepth); err != nil {
			return fail(err, root)
		}
		read, err := common.ReadValues(req.Values) // as Helm reads a values file (JSON is YAML)
		if err != nil {
			return fail(&inputError{"values: " + err.Error()}, root)
		}
		vals = read
	}
	chrt, err := loader.Load(path)
	if err != nil {
		return fail(err, root)
	}
	if err := defaultValues(chrt, req); err != nil {
		return fail(err, root)
	}
	// What `helm template` checks before it renders: an installable chart, its dependencies present.
	ac, err := chart.NewAccessor(chrt)
	if err != nil {
		return fail(err, root)
	}
	switch ac.MetadataAsMap()["Type"] {
	case "", "application":
	default:
		return fail(&inputError{fmt.Sprintf("%s: %v charts are not installable", req.Chart, ac.MetadataAsMap()["Type"])}, root)
	}
	if deps := ac.MetaDependencies(); len(deps) > 0 {
		if err := action.CheckDependencies(chrt, deps); err != nil {
			return fail(fmt.Errorf("%s: chart dependencies missing (fleet never fetches them): %w", req.Chart, err), root)
		}
	}
	cfg := action.NewConfiguration()
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient // as `helm template`: no cluster
	install.Replace = true
	install.ReleaseName = req.Release
	install.Namespace = req.Namespace
	install.IncludeCRDs = req.IncludeCRDs
	if req.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(req.KubeVersion)
		if err != nil {
			return fail(&inputError{fmt.Sprintf("kube version %q: %v", req.KubeVersion, err)}, root)
		}
		install.KubeVersion = kv
	}
	ri, err := install.RunWithContext(ctx, chrt, vals)
	if err != nil {
		return fail(err, root)
	}
	var rel *release.Release
	switch r := ri.(type) {
	case *release.Release:
		rel = r
	case release.Release:
		rel = &r
	default:
		return answer{Kind: "internal", Error: fmt.Sprintf("unexpected release type %T", ri)}
	}
	// What `helm template` prints: the manifest, then every hook with its source.
	var out strings.Builder
	fmt.Fprintln(&out, strings.TrimSpace(rel.Manifest))
	for _, h := range rel.Hooks {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
	}
	if max := pick64(req.MaxOutput, defaultMaxOutput); int64(out.Len()) > max {
		return answer{Kind: "input", Error: fmt.Sprintf("helm template of %s is %d bytes, over the %d-byte output limit", req.Chart, out.Len(), max)}
	}
	return answer{OK: true, YAML: out.String()}
}

// defaultValues replaces the chart's default values (its values.yaml) as source-controller does when it
// packages a HelmChart with spec.valuesFiles: by chart_values (files of the fleet repo, merged by fleet),
// or by values_files, files of the chart merged in order ("values.yaml" is the chart's own values), a
// missing one an error unless ignore_missing_values_files (builder_remote.go's mergeChartValues).
func defaultValues(chrt chart.Charter, req request) error {
	if len(req.ChartValues) == 0 && len(req.ValuesFiles) == 0 {
		return nil
	}
	c, ok := chrt.(*chartv2.Chart)
	if !ok {
		return &inputError{fmt.Sprintf("%s: valuesFiles of a chart of this API version are not supported", req.Chart)}
	}
	if len(req.ChartValues) > 0 && string(req.ChartValues) != "null" {
		if err := checkJSONDepth(req.ChartValues, defaultMaxDepth); err != nil {
			return err
		}
		vals, err := common.ReadValues(req.ChartValues)
		if err != nil {
			return &inputError{"valuesFiles: " + err.Error()}
		}
		c.Values = vals
		return nil
	}
	merged := map[string]any{}
	for _, p := range req.ValuesFiles {
		name := filepath.Clean(p)
		if name == "values.yaml" {
			merged = mergeMaps(merged, c.Values)
			continue
		}
		var data []byte
		for _, f := range c.Files {
			if f.Name == name {
				data = f.Data
				break
			}
		}
		if data == nil {
			if req.IgnoreMissingValuesFiles {
				continue
			}
			return &inputError{fmt.Sprintf("valuesFiles: no values file found at path '%s' in chart %s", p, c.Name())}
		}
		if err := checkFile(p, data, limitsOf(req)); err != nil {
			return err
		}
		vals := map[string]any{}
		if err := sigsyaml.Unmarshal(data, &vals); err != nil {
			return &inputError{fmt.Sprintf("valuesFiles: unmarshaling values from '%s' failed: %v", p, err)}
		}
		merged = mergeMaps(merged, vals)
	}
	c.Values = merged
	return nil
}

// mergeMaps is fluxcd/pkg's transform.MergeMaps: b over a, mappings merged key by key.
func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]any); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]any); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// confinedTree refuses a chart (directory or archive) with a symlink that leaves the root: Helm's
// directory loader follows symlinks.
func confinedTree(root, path string) error {
	return filepath.Walk(path, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return &inputError{fmt.Sprintf("%s: %v", rel(root, p), err)}
		}
		if info.Mode()&os.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(p)
			if err != nil || (real != root && !strings.HasPrefix(real, root+string(filepath.Separator))) {
				return &inputError{fmt.Sprintf("%s: symlink leaves the repository", rel(root, p))}
			}
		}
		return nil
	})
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}

func checkJSONDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return &inputError{fmt.Sprintf("values nested deeper than %d levels", max)}
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// ---- errors -----------------------------------------------------------------------------------

// cut makes an error short: paths relative to the root, at most a few lines and ~500 characters.
func cut(msg, root string) string {
	if root != "" {
		msg = strings.ReplaceAll(msg, "'"+root+"'", "the repository")
		msg = strings.ReplaceAll(msg, root+string(filepath.Separator), "")
		msg = strings.ReplaceAll(msg, root, ".")
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) > maxErrorLines {
		lines = append(lines[:maxErrorLines], "…")
	}
	msg = strings.Join(lines, "\n")
	if len(msg) > maxErrorChars {
		cutAt := maxErrorChars
		for cutAt > 0 && !utf8Start(msg[cutAt]) {
			cutAt--
		}
		msg = msg[:cutAt] + "…"
	}
	return msg
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
