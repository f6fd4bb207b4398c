package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/api"
)

// The OpenAPI document and the router agree: every route is documented
// with its method, and every documented operation is a route.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	var routed []string
	for _, r := range api.Routes() {
		if strings.HasSuffix(r, " /healthz") {
			continue // not part of the versioned API
		}
		// chi's wildcard is OpenAPI's one path parameter.
		routed = append(routed, strings.Replace(r, "/*", "/{path}", 1))
	}
	slices.Sort(documented)
	slices.Sort(routed)
	if !slices.Equal(documented, routed) {
		t.Errorf("the OpenAPI document and the router differ:\ndocumented %v\nrouted     %v", documented, routed)
	}
}
