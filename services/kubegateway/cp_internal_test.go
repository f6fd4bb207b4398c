package kubegateway

import "testing"

// The commands kubectl cp runs, and some that look like them, read as
// moving an archive or not.
func TestArchiveOf(t *testing.T) {
	for _, c := range []struct {
		argv    []string
		op, dir string
	}{
		{[]string{"tar", "cf", "-", "/tmp/foo"}, "read", ""},
		{[]string{"tar", "-xmf", "-"}, "write", ""},
		{[]string{"tar", "-xmf", "-", "-C", "/tmp/bar"}, "write", "/tmp/bar"},
		{[]string{"tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "."}, "write", "."},
		{[]string{"/bin/tar", "-C", "/srv", "-x", "-f", "-"}, "write", "/srv"},
		{[]string{"tar", "cf", "/tmp/out.tar", "/tmp/foo"}, "", ""}, // to a file, not the stream
		{[]string{"tar", "tf", "-"}, "", ""},                        // a listing moves nothing
		{[]string{"tar", "-cxf", "-"}, "", ""},
		{[]string{"sh", "-c", "tar cf - '/tmp/foo' | tail -c+42"}, "", ""},
		{[]string{"tar"}, "", ""},
	} {
		op, dir := archiveOf(c.argv)
		if op != c.op || dir != c.dir {
			t.Errorf("%q: %q %q, want %q %q", c.argv, op, dir, c.op, c.dir)
		}
	}
}
