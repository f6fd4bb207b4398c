// Package piikeys keeps the keys that let the log hold no personal data
// and still be searched and erased (docs/FORMAT.md §1.5):
//
//   - one HMAC key per tenant: a value a detector replaced is recorded as
//     its keyed digest (Match), so "was this card number ever queried?"
//     is answered without the log holding the number, and a dictionary of
//     short values cannot be tried against the log without the key;
//   - one AES-256 key per data subject: fields tied to a person that must
//     stay readable for a while (the actor's e-mail) are sealed encrypted
//     under it (Seal), and erasing the subject destroys the key (Erase),
//     after which no sealed byte of theirs decrypts.
//
// The keys live in the JetStream key-value bucket bus.PIIKeysBucket, on
// the bus, never in a segment. A destroyed key is erased from the bucket's
// store (JetStream overwrites a deleted message); a backup of the bus
// taken before an erasure still holds it, which is why backups of the
// bucket must expire sooner than the erasure deadline (docs/FORMAT.md
// §2.4).
package piikeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/text/unicode/norm"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/ledger/bus"
)

// Bucket is the key-value bucket holding the keys.
const Bucket = bus.PIIKeysBucket

var (
	// ErrErased: the subject's key was destroyed.
	ErrErased = errors.New("the data subject's key was erased")
	// ErrHeld: the subject is under legal hold and cannot be erased.
	ErrHeld = errors.New("the data subject is under legal hold")
	// ErrNoSubject: no key was ever made for the subject (nothing of
	// theirs is sealed encrypted), or it is already erased.
	ErrNoSubject = errors.New("no key for this data subject (never recorded, or already erased)")
)

// Store reads and makes keys. Keys read are kept in memory for CacheFor,
// so that recording does not ask the bus each time; a subject erased
// elsewhere is therefore sealed under its destroyed key for up to that
// long — fields nobody can read, never fields in clear.
type Store struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream

	mu       sync.Mutex
	tenants  map[string]cached
	subjects map[string]cached   // by lookup key
	noted    map[string]struct{} // sealed value entries made (noteSealer)
}

type cached struct {
	key       []byte
	pseudonym string
	at        time.Time
}

// CacheFor is how long a key read from the bucket is used without asking
// again.
const CacheFor = time.Minute

// Open returns the store on js, creating the bucket when it does not
// exist yet (replicas as the streams').
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Store, error) {
	// The bucket's stream is a key-value bucket's as bus.KeyValueStream
	// makes it (rollups refused: no credential may purge the keys) but
	// for one thing: it allows deleting one message, which erasure needs
	// (a purge marks messages deleted without overwriting them).
	st, err := js.Stream(ctx, "KV_"+Bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := bus.KeyValueStream(jetstream.KeyValueConfig{Bucket: Bucket,
			Description: "auditledger personal-data keys: tenant search keys and data subjects' field keys (never sealed)",
			Storage:     jetstream.FileStorage, Replicas: replicas})
		cfg.DenyDelete = false
		st, err = js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, "KV_"+Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("piikeys: bucket %s: %w", Bucket, err)
	}
	if st.CachedInfo().Config.DenyDelete {
		return nil, fmt.Errorf("piikeys: bucket %s denies deleting a message, so no key could be erased: it was not made by auditledger", Bucket)
	}
	if cfg := st.CachedInfo().Config; cfg.AllowRollup {
		// Made by an earlier release: a rollup message, which any
		// credential that may make a key can send, would purge every key.
		cfg.AllowRollup = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("piikeys: bucket %s allows rollups, with which any credential that may add a key can purge every key, and it could not be changed with these credentials (%w): run auditledger keys pii with the admin bus credentials once", Bucket, err)
		}
	}
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return nil, fmt.Errorf("piikeys: bucket %s: %w", Bucket, err)
	}
	return &Store{kv: kv, stream: st, tenants: map[string]cached{}, subjects: map[string]cached{}, noted: map[string]struct{}{}}, nil
}

// entry is a key as the bucket holds it.
type entry struct {
	Tenant    string    `json:"tenant"`
	Pseudonym string    `json:"pseudonym,omitempty"`
	Key       []byte    `json:"key"`
	Created   time.Time `json:"created"`
	// Reason and By: for a hold.
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

func tenantName(tenant string) string {
	h := sha256.Sum256([]byte("auditledger tenant\x00" + tenant))
	return "tenant." + hex.EncodeToString(h[:16])
}

// TenantKey returns tenant's search key, making it on first use. Two
// makers racing agree: the bucket keeps the first.
func (s *Store) TenantKey(ctx context.Context, tenant string) ([]byte, error) {
	s.mu.Lock()
	c, ok := s.tenants[tenant]
	s.mu.Unlock()
	if ok && time.Since(c.at) < CacheFor {
		return c.key, nil
	}
	e, err := s.getOrCreate(ctx, tenantName(tenant), func() entry {
		return entry{Tenant: tenant, Key: random(32), Created: time.Now().UTC()}
	})
	if err != nil {
		return nil, fmt.Errorf("piikeys: tenant %q: %w", tenant, err)
	}
	if e.Tenant != tenant || len(e.Key) != 32 {
		return nil, fmt.Errorf("piikeys: tenant %q: the bucket's entry is malformed", tenant)
	}
	s.mu.Lock()
	s.tenants[tenant] = cached{key: e.Key, at: time.Now()}
	s.mu.Unlock()
	return e.Key, nil
}

// Tenants lists the tenants that have a search key.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	keys, err := s.kv.ListKeys(ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, "tenant.") {
			continue
		}
		e, err := s.get(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, e.Tenant)
	}
	return out, nil
}

func (s *Store) get(ctx context.Context, name string) (entry, error) {
	v, err := s.kv.Get(ctx, name)
	if err != nil {
		return entry{}, err
	}
	var e entry
	if err := json.Unmarshal(v.Value(), &e); err != nil {
		return entry{}, fmt.Errorf("entry %s: %w", name, err)
	}
	return e, nil
}

func (s *Store) getOrCreate(ctx context.Context, name string, make func() entry) (entry, error) {
	e, err := s.get(ctx, name)
	if err == nil {
		return e, nil
	}
	if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return entry{}, err
	}
	e = make()
	b, _ := json.Marshal(e)
	if _, err := s.kv.Create(ctx, name, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return s.get(ctx, name)
		}
		return entry{}, err
	}
	return e, nil
}

// Canonical is the form of v that Match digests, so that a value finds
// what was recorded whatever form either was written in: Unicode NFKC,
// then folded as the detectors read it (detect.Fold: digits of any
// script as ASCII digits, Unicode spaces and dashes as space and "-",
// zero-width characters and combining marks dropped), spaces at either
// end trimmed; then a value holding "@" lower-cased; an IBAN (two
// letters, two digits, then letters and digits, with spaces or dashes
// between them) upper-cased without its separators; a value of digits
// and the separators the detectors accept between digit groups (white
// space and every printable ASCII character but letters, digits and "@":
// "-", ".", "_", "/", ":", ",", "+", "(", ")", "|", ";", …; punctuation
// and symbols beyond ASCII were folded to a space) only, its digits.
// So "4111 1111 1111 1111", "4111:1111:1111:1111" and "٤١١١١١١١١١١١١١١١"
// match alike, as do "DE89-3704-0044-0532-0130-00" and
// "de89370400440532013000".
func Canonical(v string) string {
	v = strings.TrimSpace(detect.Fold(norm.NFKC.String(v)))
	if strings.Contains(v, "@") {
		return strings.ToLower(v)
	}
	if iban, ok := ibanForm(v); ok {
		return iban
	}
	digits := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case detect.NumberSeparator(c):
		default:
			return v
		}
	}
	if len(digits) == 0 {
		return v
	}
	return string(digits)
}

// ibanForm is v upper-cased without separators when v is written as an
// IBAN is: two letters, two digits, then letters and digits, in groups
// or not.
func ibanForm(v string) (string, bool) {
	var b strings.Builder
	for _, r := range v {
		switch {
		case unicode.IsSpace(r) || r < 0x80 && detect.IBANSeparator(byte(r)):
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		default:
			return "", false
		}
		b.WriteRune(r)
	}
	c := b.String()
	if len(c) < 15 || len(c) > 34 || !isLetter(c[0]) || !isLetter(c[1]) || !isDigit(c[2]) || !isDigit(c[3]) {
		return "", false
	}
	return c, true
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// MatchDigest is the keyed digest of v under a tenant's search key:
// "hmac:" and the lower-case hex of HMAC-SHA-256(key,
// "auditledger match v1\n" ‖ Canonical(v)).
func MatchDigest(key []byte, v string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("auditledger match v1\n"))
	m.Write([]byte(Canonical(v)))
	return "hmac:" + hex.EncodeToString(m.Sum(nil))
}

// Match is MatchDigest under tenant's key.
func (s *Store) Match(ctx context.Context, tenant, v string) (string, error) {
	k, err := s.TenantKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	return MatchDigest(k, v), nil
}

// lookup names a subject's entry without naming the subject: an HMAC
// under the tenant's key, so the bucket's key names cannot be tested
// against a list of addresses without the key.
func (s *Store) lookup(ctx context.Context, tenant, issuer, subject string) (string, error) {
	k, err := s.TenantKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	return SubjectLookup(k, issuer, subject), nil
}

// SubjectLookup is the name of a subject's entries under a tenant's key
// (docs/FORMAT.md §1.6): the lower-case hex of the first 16 bytes of
// HMAC-SHA-256(key, "auditledger subject v1\n" ‖ issuer ‖ "\n" ‖ subject).
func SubjectLookup(key []byte, issuer, subject string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("auditledger subject v1\n" + issuer + "\n" + subject))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// TokenPrefix begins every sealed field.
const TokenPrefix = "pii1."

// Seal returns value sealed for field under the subject's key (made on
// first use): "pii1." ‖ pseudonym ‖ "." ‖ base64url(nonce ‖ AES-256-GCM
// ciphertext), additional data "auditledger pii v1\n" ‖ tenant ‖ "\n" ‖
// field (docs/FORMAT.md §1.6).
//
// It also notes, once per store, that the subject sealed this value
// (Sealers), so that the value can be searched for without the log
// holding it in any form an outsider could test.
func (s *Store) Seal(ctx context.Context, tenant, issuer, subject, field, value string) (string, error) {
	key, pseudonym, err := s.subjectKey(ctx, tenant, issuer, subject)
	if err != nil {
		return "", err
	}
	if err := s.noteSealer(ctx, tenant, field, value, pseudonym); err != nil {
		return "", err
	}
	return seal(key, pseudonym, tenant, field, value)
}

// A sealed value's entry, "sealed.<value>.<pseudonym>", says that the
// subject of pseudonym sealed it: <value> is the first 16 bytes, in hex,
// of HMAC-SHA-256 under the tenant's search key of "auditledger sealed
// v1\n" ‖ field ‖ "\n" ‖ Canonical(value). It holds no value and no key;
// erasure deletes it with the key.

func (s *Store) sealedName(ctx context.Context, tenant, field, value string) (string, error) {
	k, err := s.TenantKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("auditledger sealed v1\n" + field + "\n" + Canonical(value)))
	return "sealed." + hex.EncodeToString(m.Sum(nil)[:16]), nil
}

// noteSealer makes the entry saying that pseudonym sealed value, once
// per store and entry.
func (s *Store) noteSealer(ctx context.Context, tenant, field, value, pseudonym string) error {
	name, err := s.sealedName(ctx, tenant, field, value)
	if err != nil {
		return err
	}
	name += "." + pseudonym
	s.mu.Lock()
	_, done := s.noted[name]
	s.mu.Unlock()
	if done {
		return nil
	}
	if _, err := s.getOrCreate(ctx, name, func() entry {
		return entry{Tenant: tenant, Pseudonym: pseudonym, Created: time.Now().UTC()}
	}); err != nil {
		return fmt.Errorf("piikeys: sealed value entry: %w", err)
	}
	s.mu.Lock()
	if len(s.noted) >= maxNoted {
		clear(s.noted)
	}
	s.noted[name] = struct{}{}
	s.mu.Unlock()
	return nil
}

// maxNoted bounds the entries a store remembers having made; past it, it
// forgets them all and makes each again once (an existing entry is kept).
const maxNoted = 100_000

// Sealers returns the pseudonyms of the subjects of tenant whose field
// was sealed with value (Canonical forms alike), and whose key is live:
// an erased subject is not among them. An e-mail address then finds the
// events whose actor.email was sealed with it, by the pseudonym its
// token names, without the log or the projection holding the address.
func (s *Store) Sealers(ctx context.Context, tenant, field, value string) ([]string, error) {
	name, err := s.sealedName(ctx, tenant, field, value)
	if err != nil {
		return nil, err
	}
	keys, err := s.kv.ListKeysFiltered(ctx, name+".*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("piikeys: listing the bucket: %w", err)
	}
	var out []string
	for k := range keys.Keys() {
		p, ok := strings.CutPrefix(k, name+".")
		if !ok {
			continue
		}
		live, err := s.Live(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("piikeys: key %s: %w", p, err)
		}
		if live {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Pseudonym returns the subject's pseudonym, making their key if needed.
func (s *Store) Pseudonym(ctx context.Context, tenant, issuer, subject string) (string, error) {
	_, p, err := s.subjectKey(ctx, tenant, issuer, subject)
	return p, err
}

// PseudonymOf returns the subject's pseudonym without making a key:
// ErrNoSubject when none was made, or it was erased.
func (s *Store) PseudonymOf(ctx context.Context, tenant, issuer, subject string) (string, error) {
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return "", err
	}
	e, err := s.get(ctx, "subject."+lk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", ErrNoSubject
	}
	if err != nil {
		return "", fmt.Errorf("piikeys: subject entry: %w", err)
	}
	return e.Pseudonym, nil
}

func (s *Store) subjectKey(ctx context.Context, tenant, issuer, subject string) ([]byte, string, error) {
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	c, ok := s.subjects[lk]
	s.mu.Unlock()
	if ok && time.Since(c.at) < CacheFor {
		return c.key, c.pseudonym, nil
	}
	// The key is kept under its pseudonym (what a sealed field names) and
	// the subject's lookup names the pseudonym: erasure destroys both.
	p := hex.EncodeToString(random(16))
	ref, err := s.getOrCreate(ctx, "subject."+lk, func() entry {
		return entry{Tenant: tenant, Pseudonym: p, Created: time.Now().UTC()}
	})
	if err != nil {
		return nil, "", fmt.Errorf("piikeys: subject key: %w", err)
	}
	e, err := s.getOrCreate(ctx, "key."+ref.Pseudonym, func() entry {
		return entry{Tenant: tenant, Pseudonym: ref.Pseudonym, Key: random(32), Created: time.Now().UTC()}
	})
	if err != nil {
		return nil, "", fmt.Errorf("piikeys: subject key: %w", err)
	}
	if len(e.Key) != 32 || e.Tenant != tenant {
		return nil, "", fmt.Errorf("piikeys: subject key %s: the bucket's entry is malformed", ref.Pseudonym)
	}
	s.mu.Lock()
	s.subjects[lk] = cached{key: e.Key, pseudonym: ref.Pseudonym, at: time.Now()}
	s.mu.Unlock()
	return e.Key, ref.Pseudonym, nil
}

func aad(tenant, field string) []byte {
	return []byte("auditledger pii v1\n" + tenant + "\n" + field)
}

func seal(key []byte, pseudonym, tenant, field, value string) (string, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return "", err
	}
	nonce := random(g.NonceSize())
	ct := g.Seal(nonce, nonce, []byte(value), aad(tenant, field))
	return TokenPrefix + pseudonym + "." + base64.RawURLEncoding.EncodeToString(ct), nil
}

// ParseToken splits a sealed field into its pseudonym and sealed bytes;
// ok is false for a string that is not one.
func ParseToken(s string) (pseudonym string, sealed []byte, ok bool) {
	rest, found := strings.CutPrefix(s, TokenPrefix)
	if !found {
		return "", nil, false
	}
	p, b64, found := strings.Cut(rest, ".")
	if !found || len(p) != 32 || strings.Trim(p, "0123456789abcdef") != "" {
		return "", nil, false
	}
	ct, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(ct) < 12+16 {
		return "", nil, false
	}
	return p, ct, true
}

// Unseal returns the value of a sealed field, or ErrErased when its
// subject's key was destroyed.
func (s *Store) Unseal(ctx context.Context, tenant, field, token string) (string, error) {
	p, ct, ok := ParseToken(token)
	if !ok {
		return "", fmt.Errorf("piikeys: not a sealed field")
	}
	e, err := s.get(ctx, "key."+p)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", ErrErased
	}
	if err != nil {
		return "", fmt.Errorf("piikeys: key %s: %w", p, err)
	}
	b, err := aes.NewCipher(e.Key)
	if err != nil {
		return "", err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return "", err
	}
	pt, err := g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], aad(tenant, field))
	if err != nil {
		return "", fmt.Errorf("piikeys: field %s does not open under key %s (another tenant's or field's, or damaged)", field, p)
	}
	return string(pt), nil
}

// Live reports whether the key of pseudonym still exists: false once its
// subject was erased (or for a pseudonym never made).
func (s *Store) Live(ctx context.Context, pseudonym string) (bool, error) {
	_, err := s.kv.Get(ctx, "key."+pseudonym)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Hold places a subject under legal hold: Erase refuses them until
// Release.
func (s *Store) Hold(ctx context.Context, tenant, issuer, subject, reason, by string) error {
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(entry{Tenant: tenant, Reason: reason, By: by, Created: time.Now().UTC()})
	_, err = s.kv.Put(ctx, "hold."+lk, b)
	return err
}

// Release lifts a subject's legal hold.
func (s *Store) Release(ctx context.Context, tenant, issuer, subject string) error {
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return err
	}
	return s.kv.Delete(ctx, "hold."+lk) // a delete marker: the bucket refuses purges (rollups)
}

// Held reports whether the subject is under legal hold, and why.
func (s *Store) Held(ctx context.Context, tenant, issuer, subject string) (bool, string, error) {
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return false, "", err
	}
	e, err := s.get(ctx, "hold."+lk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	return true, e.Reason, nil
}

// Erase destroys the subject's key and returns its pseudonym: every field
// sealed under it stops decrypting. The bucket's messages holding the key
// and the subject's lookup are erased from the store (overwritten), not
// only marked deleted. A subject under legal hold is refused (ErrHeld).
func (s *Store) Erase(ctx context.Context, tenant, issuer, subject string) (string, error) {
	held, reason, err := s.Held(ctx, tenant, issuer, subject)
	if err != nil {
		return "", err
	}
	if held {
		return "", fmt.Errorf("%w (%s)", ErrHeld, reason)
	}
	lk, err := s.lookup(ctx, tenant, issuer, subject)
	if err != nil {
		return "", err
	}
	ref, err := s.kv.Get(ctx, "subject."+lk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", ErrNoSubject
	}
	if err != nil {
		return "", err
	}
	var e entry
	if err := json.Unmarshal(ref.Value(), &e); err != nil {
		return "", fmt.Errorf("piikeys: subject entry: %w", err)
	}
	if key, err := s.kv.Get(ctx, "key."+e.Pseudonym); err == nil {
		if err := s.stream.SecureDeleteMsg(ctx, key.Revision()); err != nil {
			return "", fmt.Errorf("piikeys: erasing key %s: %w", e.Pseudonym, err)
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", err
	}
	if err := s.stream.SecureDeleteMsg(ctx, ref.Revision()); err != nil {
		return "", fmt.Errorf("piikeys: erasing subject entry: %w", err)
	}
	// The entries saying which values the subject sealed go too: an
	// erased e-mail address is no longer found.
	if err := s.eraseMatching(ctx, "sealed.*."+e.Pseudonym); err != nil {
		return "", fmt.Errorf("piikeys: erasing the sealed value entries of %s: %w", e.Pseudonym, err)
	}
	s.mu.Lock()
	delete(s.subjects, lk)
	s.mu.Unlock()
	return e.Pseudonym, nil
}

// eraseMatching erases from the store every entry whose name matches
// filter.
func (s *Store) eraseMatching(ctx context.Context, filter string) error {
	keys, err := s.kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	for _, k := range names {
		v, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.stream.SecureDeleteMsg(ctx, v.Revision()); err != nil {
			return err
		}
	}
	return nil
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
