// Command pulumi-resource-kubernetes serves the Pulumi Kubernetes provider.
//
// The upstream main embeds schema-embed.json and terraform-mapping-embed.json, which its
// `go generate` writes and a module zip does not carry. tools/build.sh copies the module's committed
// schema.json and terraform-mapping.json next to this file before building; the schema's version is
// set here, as upstream's generate.go does, from the version stamped with -ldflags.
package main

import (
	_ "embed"
	"encoding/json"
	"log"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema.json
var schema []byte

//go:embed terraform-mapping.json
var terraformMapping []byte

func main() {
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(schema, &spec); err != nil {
		log.Fatalf("cannot read the provider schema: %v", err)
	}
	v, _ := json.Marshal(version.Version)
	spec["version"] = v
	versioned, err := json.Marshal(spec)
	if err != nil {
		log.Fatalf("cannot write the provider schema: %v", err)
	}
	provider.Serve("kubernetes", version.Version, versioned, terraformMapping)
}
