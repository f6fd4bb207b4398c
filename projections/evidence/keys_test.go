package evidence_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections/evidence"
)

// Verification takes both of the operator's keys from outside the bundle:
// with one of them (a stolen key's owner ships the other in keys/), or
// none, it refuses to start; --trust-bundle-keys checks with the bundle's
// copies and the report says the origin is unverified. A bundle whose log
// key and checkpoints were replaced and re-signed with the stolen evidence
// key fails with both keys given.
func TestVerifyNeedsTheOperatorsKeys(t *testing.T) {
	r := newRun(t)
	operatorSigners := []ssh.PublicKey{r.signer.PublicKey()}
	verify := func(b []byte, o evidence.VerifyOptions) (*evidence.Report, error) {
		o.AllowUnlocked = true
		return evidence.Verify(bytes.NewReader(b), int64(len(b)), o)
	}
	for name, o := range map[string]evidence.VerifyOptions{
		"no key":                       {},
		"only the evidence signer key": {AllowedSigners: operatorSigners},
		"only the log verifier key":    {LogVerifier: r.verifer},
	} {
		if rep, err := verify(r.bundle, o); !errors.Is(err, evidence.ErrKeysRequired) || rep != nil {
			t.Errorf("%s: %v, want %v", name, err, evidence.ErrKeysRequired)
		}
	}
	for name, o := range map[string]evidence.VerifyOptions{
		"no key":                       {TrustBundleKeys: true},
		"only the evidence signer key": {TrustBundleKeys: true, AllowedSigners: operatorSigners},
		"only the log verifier key":    {TrustBundleKeys: true, LogVerifier: r.verifer},
	} {
		rep, err := verify(r.bundle, o)
		if err != nil || !rep.UnverifiedOrigin || !strings.Contains(strings.Join(rep.Warnings, "\n"), "unverified origin") {
			t.Errorf("--trust-bundle-keys with %s: %v, want a report of unverified origin", name, err)
		}
	}
	if rep, err := verify(r.bundle, evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: operatorSigners}); err != nil || rep.UnverifiedOrigin {
		t.Fatalf("both keys: %v", err)
	}

	// The evidence key stolen: the attacker ships their own log key and
	// checkpoints it signed, and re-signs the bundle.
	skey, vkey, _ := ledger.GenerateKey(nil, "evidence.test/log")
	forger, _ := ledger.NewNoteSigner(skey)
	f := zipFiles(t, r.bundle)
	for _, name := range []string{evidence.StartCheckpoint, evidence.EndCheckpoint, evidence.LatestCheckpoint} {
		cp, err := ledger.OpenCheckpoint(f[name], r.verifer)
		if err != nil {
			t.Fatal(err)
		}
		re, err := ledger.SignCheckpoint(forger, cp.Size, cp.Root)
		if err != nil {
			t.Fatal(err)
		}
		f[name] = re.Signed
	}
	f[evidence.LogKeyFile] = []byte(vkey + "\n")
	resign(t, f, r.signer)
	forged := rezip(t, f)
	if _, err := verify(forged, evidence.VerifyOptions{LogVerifier: r.verifer, AllowedSigners: operatorSigners}); err == nil || !strings.Contains(err.Error(), evidence.EndCheckpoint) {
		t.Errorf("checkpoints signed by another log key, both operator keys given: %v", err)
	}
	if _, err := verify(forged, evidence.VerifyOptions{AllowedSigners: operatorSigners}); !errors.Is(err, evidence.ErrKeysRequired) {
		t.Errorf("the stolen evidence key alone: %v", err)
	}
	if rep, err := verify(forged, evidence.VerifyOptions{AllowedSigners: operatorSigners, TrustBundleKeys: true}); err != nil || !rep.UnverifiedOrigin {
		t.Errorf("the forged bundle with its own log key: %v; it passes only as of unverified origin", err)
	}
}
