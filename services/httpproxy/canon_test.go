package httpproxy

import (
	"errors"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "/",
		"/":                 "/",
		"/admin":            "/admin",
		"/./admin":          "/admin",
		"/x/../admin":       "/admin",
		"/%2e/admin":        "/admin",
		"/%2E%2E/admin":     "/admin",
		"/x/%2e%2e/admin":   "/admin",
		"//admin//users/":   "/admin/users/",
		"/../../etc/passwd": "/etc/passwd",
		"/a/b/..":           "/a/",
		"/%61dmin":          "/admin",
		"/files/a%3ab":      "/files/a%3Ab",
		"/files/%e2%82%ac":  "/files/%E2%82%AC",
		"/api/v1/pods;x=1":  "/api/v1/pods;x=1",
		"/~user/.profile":   "/~user/.profile",
	} {
		got, err := canonicalPath(in)
		if err != nil || got != want {
			t.Errorf("canonicalPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/admin%2fusers", "/admin%2Fusers", "/a\\b", "/a%5cb", "/a%00b", "/a%252e%252e/admin", "/..;/admin", "/x/..;x/admin", "/a%zz", "/a%2", "admin", "/a b"} {
		if got, err := canonicalPath(in); !errors.Is(err, errAmbiguous) {
			t.Errorf("canonicalPath(%q) = %q, %v; want refused as ambiguous", in, got, err)
		}
	}
}
