package httpproxy_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/auditledger/auditledger/services/gateway/gatewaytest"
)

// A card number split over path segments or over the values of a query
// parameter given more than once, or written with separators of any kind
// (| ; · tab), and an address written with HTML character references or
// escapes, sent with curl, reach none of the bus's streams, whole or in
// part, as typed or as digits only.
func TestSplitAndSeparatedValuesNeverReachTheBus(t *testing.T) {
	f := start(t)
	curl := func(args ...string) {
		t.Helper()
		args = append([]string{"-sS", "--fail-with-body", "-H", "Authorization: Bearer " + f.tokens["alice"]}, args...)
		if out, err := exec.Command("curl", args...).CombinedOutput(); err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
	}
	var absent []string
	digits := func() string {
		d := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
		absent = append(absent, d, d[:8], d[8:])
		return d
	}
	d := digits()
	curl(f.proxy.URL + "/api/q/" + d[:8] + "/" + d[8:])
	d = digits()
	curl(f.proxy.URL + "/api/q?c=" + d[:4] + "&c=" + d[4:8] + "&c=" + d[8:12] + "&c=" + d[12:])
	d = digits()
	curl(f.proxy.URL + "/api/q?c=" + d[:4] + "%7C" + d[4:8] + "%7C" + d[8:12] + "%7C" + d[12:])
	d = digits()
	curl(f.proxy.URL + "/api/q?c=" + d[:4] + "%3B" + d[4:8] + "%3B" + d[8:12] + "%3B" + d[12:])
	d = digits()
	curl(f.proxy.URL + "/api/q?c=" + d[:4] + "%C2%B7" + d[4:8] + "%C2%B7" + d[8:12] + "%C2%B7" + d[12:])
	d = digits()
	curl(f.proxy.URL + "/api/q?c=" + d[:4] + "%09" + d[4:8] + "%09" + d[8:12] + "%09" + d[12:])
	f.waitFor(t, "response.digest", 6)
	stored := gatewaytest.BusBytes(t, f.js)
	if !bytes.Contains(stored, []byte("[REDACTED:credit_card]")) {
		t.Fatalf("no placeholder on the bus")
	}
	gatewaytest.CheckAbsent(t, stored, absent...)
}

// A card number split over the values of different query parameters
// (?a=41111111&b=11111111, which a server joins as it likes) or an
// address over three (?u=jane&at=@&d=example.com) reaches no stream.
func TestSplitOverQueryNames(t *testing.T) {
	f := start(t)
	var absent []string
	for i := range 3 {
		d := strings.ReplaceAll(gatewaytest.Card(t), " ", "")
		q := "?a=" + d[:8] + "&b=" + d[8:]
		if i == 1 {
			q = "?a=" + d[:4] + "&b=" + d[4:8] + "&c=" + d[8:12] + "&d=" + d[12:] + "&page=2"
		}
		if i == 2 {
			q = "?x=" + d[:4] + "-" + d[4:8] + "&y=" + d[8:12] + "-" + d[12:]
		}
		absent = append(absent, d[:8], d[8:])
		if out, err := exec.Command("curl", "-sS", "--fail-with-body", "-H", "Authorization: Bearer "+f.tokens["alice"], f.proxy.URL+"/api/q"+q).CombinedOutput(); err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	}
	f.waitFor(t, "response.digest", 3)
	gatewaytest.CheckAbsent(t, gatewaytest.BusBytes(t, f.js), absent...)
}
