package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestResponseMaskingReadsFolded: values a mask rule's detectors find in
// a response, written in full-width digits, another script's digits or
// split by Unicode spaces and dashes, inside longer text, are masked by
// both gateways as the plain values are: a PostgreSQL result value, an
// HTTP plain-text body and a string inside a JSON body, read by psql and
// curl.
func TestResponseMaskingReadsFolded(t *testing.T) {
	values := []string{
		"４１１１ １１１１ １１１１ １１１１",                // full-width digits, ASCII spaces
		"5555\u20095555\u202f5555\u20074444", // thin, narrow and figure spaces
		"٤١١١١١١١١١١١١١١١",                   // Arabic-Indic digits
		"3782\u2010822463\u201310005",        // Unicode dashes
		"ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",                   // full-width e-mail
	}
	text := "note: pay with " + strings.Join(values, " then ") + " now"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/note.json" {
			w.Header().Set("Content-Type", "application/json")
			b, _ := json.Marshal(map[string]string{"note": text})
			w.Write(b)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, text)
	}))
	defer up.Close()
	dir := t.TempDir()
	rules := "    detect: [credit_card, email]\n    method: redact\n"
	policy, httpPolicy := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "http-policy.yaml")
	os.WriteFile(policy, []byte("version: 2\nmask:\n  - id: pii\n"+rules), 0o644)
	os.WriteFile(httpPolicy, []byte("version: 2\nmask:\n  - id: pii\n"+rules), 0o644)
	pg := targetPostgres(t)
	db := pg.NewDatabase(t)
	d := startDev(t, []string{"AUDITLEDGER_PROXY_UPSTREAM=" + pg.DSN(db)}, "--policy", policy, "--http-upstream", up.URL, "--http-policy", httpPolicy)
	if d.proxy == "" || d.http == "" {
		t.Fatalf("dev started without a gateway: postgres proxy %q, http proxy %q", d.proxy, d.http)
	}
	alice := d.token(t, "alice")
	host, port, _ := strings.Cut(d.proxy, ":")
	// The statement sends the text as a string of code points, so that
	// the statement holds no value: the server builds it.
	var codes []string
	for _, r := range text {
		codes = append(codes, "chr("+strconv.Itoa(int(r))+")")
	}
	psql := exec.Command("psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", "SELECT "+strings.Join(codes, "||"),
		"host="+host+" port="+port+" user=alice dbname="+db+" sslmode=disable")
	psql.Env = append(os.Environ(), "PGPASSWORD="+alice)
	pgOut, err := psql.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, pgOut)
	}
	curl := func(path string) string {
		t.Helper()
		c := exec.Command("curl", "-sS", "--fail-with-body", "-H", "@-", d.http+path)
		c.Stdin = strings.NewReader("Authorization: Bearer " + alice + "\n")
		out, err := c.Output()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", path, err, out)
		}
		return string(out)
	}
	var js struct{ Note string }
	if err := json.Unmarshal([]byte(curl("/note.json")), &js); err != nil {
		t.Fatal(err)
	}
	want := "note: pay with " + strings.TrimSuffix(strings.Repeat("[REDACTED] then ", len(values)), " then ") + " now"
	for name, got := range map[string]string{"postgres proxy": strings.TrimSpace(string(pgOut)), "http proxy, text": curl("/note"), "http proxy, a JSON string": js.Note} {
		if got != want {
			t.Errorf("%s response:\n got %q\nwant %q", name, got, want)
		}
	}
}
