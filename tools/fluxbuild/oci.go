// OCI chart sources: a HelmRepository of type oci, or an OCIRepository named by a HelmRelease's chartRef.
//
//	{"id":"5","op":"oci_resolve","ref":"127.0.0.1:5000/charts/podinfo","version":">=6.0.0","plain_http":true}
//	{"id":"6","op":"oci_resolve","ref":"ghcr.io/org/podinfo","semver":"6.x","media_types":["..."]}
//	{"id":"7","op":"oci_blob","ref":"ghcr.io/org/podinfo","digest":"sha256:...","size":12345}
//	-> {"id":"5","ok":true,"tag":"6.5.0","manifest":"sha256:...","layer":{"digest":"sha256:...","size":..}}
//	-> {"id":"7","ok":true,"data":"<base64 of the chart archive>"}
//
// "oci_resolve" picks the tag as Flux does (a HelmRepository's chart version: Helm's registry client's tag
// list and Helm's GetTagMatchingVersionOrConstraint, an exact tag first, else the highest semver tag in
// the range; an OCIRepository's ref: digest, else the highest tag in the semver range (after the
// optional semverFilter), else the tag, else "latest"), reads the manifest, and names the chart's layer:
// the first layer of one of media_types (the first layer when none is given). "oci_blob" fetches that
// layer by digest, its size and digest checked.
//
// These are the only requests with a network: their own HTTP client (the default transport stays the
// refusing one), anonymous (no credentials of any kind: no docker or Helm credential store, no helper
// program), plain HTTP only when the request says so (the source's spec.insecure), every response body
// capped (4 MiB while resolving; the blob's size and 4 MiB while fetching it, whose size and digest are
// checked after), the blob at the request's max_output.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v4/pkg/registry"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

const (
	maxManifest = 4 << 20 // bytes of a manifest, and of any metadata response (a page of tags)
	maxTagPages = 1000    // pages of a tag list
)

type layer struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type"`
}

// ociHTTP is the HTTP client of an OCI request: dial and header timeouts, every body capped at max.
func ociHTTP(max int64) *http.Client {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          4,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: cappedTransport{t, max}}
}

type cappedTransport struct {
	next http.RoundTripper
	max  int64
}

func (c cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: c.max}
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("response over the size limit")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// ociRepo is the repository at ref (host[:port]/path, no scheme, no tag), anonymous.
func ociRepo(req request, max int64) (*remote.Repository, *http.Client, error) {
	if req.Ref == "" || strings.Contains(req.Ref, "://") || strings.ContainsAny(req.Ref, "@ \t\n") {
		return nil, nil, &inputError{fmt.Sprintf("OCI repository %q is not host/path", req.Ref)}
	}
	repo, err := remote.NewRepository(req.Ref)
	if err != nil {
		return nil, nil, &inputError{fmt.Sprintf("OCI repository %q: %v", req.Ref, err)}
	}
	hc := ociHTTP(max)
	repo.PlainHTTP = req.PlainHTTP
	repo.Client = &auth.Client{Client: hc} // no Credential: anonymous, with the anonymous token flow
	repo.MaxMetadataBytes = maxManifest
	repo.TagListPageSize = 1000
	return repo, hc, nil
}

func ociResolve(ctx context.Context, req request) answer {
	repo, hc, err := ociRepo(req, maxManifest)
	if err != nil {
		return ociFail(err, req)
	}
	tag, reference := req.Tag, ""
	switch {
	case req.Digest != "":
		reference = req.Digest
	case req.Helm:
		// A HelmRepository of type oci: Helm's own registry client lists the tags (semver tags only,
		// "_" read as "+", highest first) and Helm picks the version.
		client, err := registry.NewClient(
			registry.ClientOptHTTPClient(hc),
			registry.ClientOptAuthorizer(auth.Client{Client: hc}),
			registry.ClientOptCredentialsFile("/nonexistent/fleet-build/registry.json"),
			plainHTTP(req.PlainHTTP),
		)
		if err != nil {
			return ociFail(err, req)
		}
		tags, err := client.Tags(req.Ref)
		if err != nil {
			return ociFail(err, req)
		}
		if len(tags) == 0 {
			return ociFail(&inputError{fmt.Sprintf("oci://%s has no chart versions (no semver tags)", req.Ref)}, req)
		}
		v, err := registry.GetTagMatchingVersionOrConstraint(tags, req.Version)
		if err != nil {
			shown := tags
			if len(shown) > 6 {
				shown = shown[:6]
			}
			return ociFail(&inputError{fmt.Sprintf("no version of oci://%s meets %q (it has %s)", req.Ref,
				orStar(req.Version), strings.Join(shown, ", "))}, req)
		}
		tag = v
		reference = strings.ReplaceAll(v, "+", "_")
	case req.Semver != "":
		t, err := bySemver(ctx, repo, req)
		if err != nil {
			return ociFail(err, req)
		}
		tag, reference = t, t
	default:
		if tag == "" {
			tag = "latest"
		}
		reference = tag
	}
	desc, rc, err := repo.FetchReference(ctx, reference)
	if err != nil {
		return ociFail(err, req)
	}
	defer rc.Close()
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, "application/vnd.docker.distribution.manifest.v2+json":
	default:
		return ociFail(&inputError{fmt.Sprintf("oci://%s:%s is a %s, not an artifact manifest", req.Ref, reference, desc.MediaType)}, req)
	}
	if desc.Size > maxManifest {
		return ociFail(&inputError{fmt.Sprintf("oci://%s:%s: manifest over %d bytes", req.Ref, reference, maxManifest)}, req)
	}
	raw, err := content.ReadAll(rc, desc)
	if err != nil {
		return ociFail(err, req)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return ociFail(&inputError{fmt.Sprintf("oci://%s:%s: manifest is not JSON: %v", req.Ref, reference, err)}, req)
	}
	var found *ocispec.Descriptor
	for i := range m.Layers {
		l := &m.Layers[i]
		if len(req.MediaTypes) == 0 || contains(req.MediaTypes, l.MediaType) {
			found = l
			break
		}
	}
	if found == nil {
		want := "a layer"
		if len(req.MediaTypes) > 0 {
			want = "a layer of type " + strings.Join(req.MediaTypes, " or ")
		}
		return ociFail(&inputError{fmt.Sprintf("oci://%s:%s has no %s", req.Ref, reference, want)}, req)
	}
	return answer{OK: true, Tag: tag, Manifest: desc.Digest.String(),
		Layer: &layer{Digest: found.Digest.String(), Size: found.Size, MediaType: found.MediaType}}
}

func plainHTTP(on bool) registry.ClientOption {
	if on {
		return registry.ClientOptPlainHTTP()
	}
	return func(*registry.Client) {}
}

// bySemver is source-controller's OCIRepository spec.ref.semver: the highest tag that parses as a
// version and meets the range, after spec.ref.semverFilter (a regular expression on the tags).
func bySemver(ctx context.Context, repo *remote.Repository, req request) (string, error) {
	constraint, err := semver.NewConstraint(req.Semver)
	if err != nil {
		return "", &inputError{fmt.Sprintf("semver %q: %v", req.Semver, err)}
	}
	var filter *regexp.Regexp
	if req.SemverFilter != "" {
		if filter, err = regexp.Compile(req.SemverFilter); err != nil {
			return "", &inputError{fmt.Sprintf("semverFilter %q: %v", req.SemverFilter, err)}
		}
	}
	type tv struct {
		tag string
		v   *semver.Version
	}
	var matches []tv
	pages := 0
	err = repo.Tags(ctx, "", func(tags []string) error {
		if pages++; pages > maxTagPages {
			return errors.New("too many pages of tags")
		}
		for _, t := range tags {
			if filter != nil && !filter.MatchString(t) {
				continue
			}
			if v, err := semver.NewVersion(t); err == nil && constraint.Check(v) {
				matches = append(matches, tv{t, v})
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(matches) == 0 {
		return "", &inputError{fmt.Sprintf("no tag of oci://%s meets semver %q", req.Ref, req.Semver)}
	}
	sort.SliceStable(matches, func(i, j int) bool { return matches[i].v.GreaterThan(matches[j].v) })
	return matches[0].tag, nil
}

func ociBlob(ctx context.Context, req request) answer {
	max := pick64(req.MaxOutput, defaultMaxOutput)
	if req.Size <= 0 || req.Size > max {
		return ociFail(&inputError{fmt.Sprintf("oci://%s@%s: chart of %d bytes, over the %d-byte limit", req.Ref, req.Digest, req.Size, max)}, req)
	}
	repo, _, err := ociRepo(req, req.Size+maxManifest) // the blob, or a token answer on the way to it
	if err != nil {
		return ociFail(err, req)
	}
	desc := ocispec.Descriptor{MediaType: registry.ChartLayerMediaType, Size: req.Size}
	if err := json.Unmarshal([]byte(`"`+req.Digest+`"`), &desc.Digest); err != nil || desc.Digest.Validate() != nil {
		return ociFail(&inputError{fmt.Sprintf("digest %q is not a digest", req.Digest)}, req)
	}
	rc, err := repo.Blobs().Fetch(ctx, desc)
	if err != nil {
		return ociFail(err, req)
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, desc) // its size and digest checked
	if err != nil {
		return ociFail(err, req)
	}
	return answer{OK: true, Data: data}
}

// ociFail words an OCI failure in one line: "unreachable" when the registry could not be reached or
// answered 5xx or 429, else "input" (not found, refused, malformed).
func ociFail(err error, req request) answer {
	var ie *inputError
	if errors.As(err, &ie) {
		return answer{Kind: "input", Error: cut(ie.msg, "")}
	}
	var ec *errcode.ErrorResponse
	if errors.As(err, &ec) {
		what := fmt.Sprintf("HTTP %d", ec.StatusCode)
		if ec.StatusCode >= 500 || ec.StatusCode == http.StatusTooManyRequests { // down or overloaded, as an HTTP repository's
			return answer{Kind: "unreachable", Error: cut(fmt.Sprintf("cannot reach oci://%s: %s", req.Ref, what), "")}
		}
		if ec.StatusCode == http.StatusNotFound || errors.Is(err, errdef.ErrNotFound) {
			what = "not found"
		}
		if ec.StatusCode == http.StatusUnauthorized || ec.StatusCode == http.StatusForbidden {
			what += " (fleet reads OCI registries anonymously)"
		}
		return answer{Kind: "input", Error: cut(fmt.Sprintf("oci://%s: %s", req.Ref, what), "")}
	}
	if errors.Is(err, errdef.ErrNotFound) {
		return answer{Kind: "input", Error: cut(fmt.Sprintf("oci://%s: not found", req.Ref), "")}
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return answer{Kind: "input", Error: cut(fmt.Sprintf("oci://%s serves plain HTTP, not HTTPS: fleet reads it only "+
			"when the source sets spec.insecure: true", req.Ref), "")}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) {
		return answer{Kind: "unreachable", Error: cut(fmt.Sprintf("cannot reach oci://%s: %v", req.Ref, rootCause(err)), "")}
	}
	return answer{Kind: "input", Error: cut(fmt.Sprintf("oci://%s: %v", req.Ref, err), "")}
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orStar(s string) string {
	if s == "" {
		return "*"
	}
	return s
}
