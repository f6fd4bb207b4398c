package piikeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxBulkPiece is the most bytes of a stream one bulk piece holds
// (docs/FORMAT.md §1.7).
const MaxBulkPiece = 512 << 10

// BulkOverhead is how many bytes a piece's object adds to the bytes it
// holds: the nonce and the tag.
const BulkOverhead = 12 + 16

// ErrBulkDamaged: a piece's object does not open at its place (damaged,
// another place's or another key's), as against a key store that failed.
var ErrBulkDamaged = errors.New("bulk piece does not open")

// BulkPlace is where a piece stands: the stream of a session of a
// tenant, from a byte offset. The object opens only at its place.
type BulkPlace struct {
	Tenant, Session, Stream string
	Offset                  int64
}

// aad is the additional data of the piece at p.
func (p BulkPlace) aad() []byte {
	return []byte("auditledger bulk v1\n" + p.Tenant + "\n" + p.Session + "\n" + p.Stream + "\n" + strconv.FormatInt(p.Offset, 10))
}

// BulkName is a piece's name: the lower-case hex of its object's SHA-256.
func BulkName(object []byte) string {
	sum := sha256.Sum256(object)
	return hex.EncodeToString(sum[:])
}

// SealBulk returns the object of the piece b at place, sealed under the
// key of the subject (made on first use), and the subject's pseudonym.
func (s *Store) SealBulk(ctx context.Context, issuer, subject string, place BulkPlace, b []byte) (object []byte, pseudonym string, err error) {
	return s.SealBulkInto(ctx, nil, issuer, subject, place, b)
}

// SealBulkInto is SealBulk writing the object into dst's memory when it
// has room for it (len(b) + BulkOverhead bytes): a writer that reuses
// its buffers allocates, and clears, none.
func (s *Store) SealBulkInto(ctx context.Context, dst []byte, issuer, subject string, place BulkPlace, b []byte) (object []byte, pseudonym string, err error) {
	if len(b) == 0 || len(b) > MaxBulkPiece {
		return nil, "", fmt.Errorf("piikeys: a bulk piece holds 1 to %d bytes, not %d", MaxBulkPiece, len(b))
	}
	key, pseudonym, err := s.subjectKey(ctx, place.Tenant, issuer, subject)
	if err != nil {
		return nil, "", err
	}
	object, err = sealBulkInto(dst, key, random(12), place, b)
	return object, pseudonym, err
}

// sealBulk seals b at place under key with nonce.
func sealBulk(key, nonce []byte, place BulkPlace, b []byte) ([]byte, error) {
	return sealBulkInto(nil, key, nonce, place, b)
}

// sealBulkInto is sealBulk into dst's memory when it has room.
func sealBulkInto(dst, key, nonce []byte, place BulkPlace, b []byte) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if cap(dst) < len(nonce)+len(b)+g.Overhead() {
		dst = make([]byte, 0, len(nonce)+len(b)+g.Overhead())
	}
	return g.Seal(append(dst[:0], nonce...), nonce, b, place.aad()), nil
}

// OpenBulk returns the bytes of the piece object sealed under the key of
// pseudonym at place, or ErrErased when that key was destroyed.
func (s *Store) OpenBulk(ctx context.Context, pseudonym string, place BulkPlace, object []byte) ([]byte, error) {
	e, err := s.get(ctx, "key."+pseudonym)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("piikeys: key %s: %w", pseudonym, err)
	}
	return OpenBulkWith(e.Key, place, object)
}

// CheckBulk is OpenBulk for a reader that only needs to know the piece
// opens (the writer's check, docs/FORMAT.md §1.7): the same errors, and
// the bytes opened into a buffer it reuses, never returned.
func (s *Store) CheckBulk(ctx context.Context, pseudonym string, place BulkPlace, object []byte) error {
	e, err := s.get(ctx, "key."+pseudonym)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ErrErased
	}
	if err != nil {
		return fmt.Errorf("piikeys: key %s: %w", pseudonym, err)
	}
	buf := openedBufs.Get().(*[]byte)
	defer openedBufs.Put(buf)
	b, err := openBulkInto((*buf)[:0], e.Key, place, object)
	if err == nil && cap(b) <= MaxBulkPiece {
		*buf = b[:0]
	}
	return err
}

// openedBufs are the buffers CheckBulk opens pieces into.
var openedBufs = sync.Pool{New: func() any { b := make([]byte, 0, MaxBulkPiece); return &b }}

// OpenBulkWith opens a piece's object under key.
func OpenBulkWith(key []byte, place BulkPlace, object []byte) ([]byte, error) {
	return openBulkInto(nil, key, place, object)
}

// openBulkInto opens a piece's object under key, appending its bytes to
// dst.
func openBulkInto(dst, key []byte, place BulkPlace, object []byte) ([]byte, error) {
	g, err := gcm(key)
	if err != nil {
		return nil, err
	}
	if len(object) < BulkOverhead {
		return nil, fmt.Errorf("piikeys: %w: %s is %d bytes, shorter than a nonce and a tag", ErrBulkDamaged, BulkName(object), len(object))
	}
	b, err := g.Open(dst, object[:g.NonceSize()], object[g.NonceSize():], place.aad())
	if err != nil {
		return nil, fmt.Errorf("piikeys: %w: %s at offset %d of %s of session %s (another place's, another key's, or damaged)",
			ErrBulkDamaged, BulkName(object), place.Offset, place.Stream, place.Session)
	}
	return b, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// OpenExisting returns the store on js if its bucket exists, and
// ErrNoStore if not: for readers that must not make one (the writer,
// which checks bulk pieces against keys only gateways make).
func OpenExisting(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	if _, err := js.Stream(ctx, "KV_"+Bucket); errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoStore
	} else if err != nil {
		return nil, fmt.Errorf("piikeys: bucket %s: %w", Bucket, err)
	}
	return Open(ctx, js, 1)
}

// ErrNoStore: the key store's bucket does not exist.
var ErrNoStore = errors.New("piikeys: no key store (bucket " + Bucket + " does not exist)")

// ActorPseudonym is the pseudonym of an event's actor as the event
// records it: the actor's subject's, or the one its subject names
// ("pseudonym:<32 hex>", docs/FORMAT.md §1.6). ErrNoSubject when the
// subject has no key (never made, or erased).
func (s *Store) ActorPseudonym(ctx context.Context, tenant, issuer, subject string) (string, error) {
	if p, ok := strings.CutPrefix(subject, "pseudonym:"); ok && len(p) == 32 {
		return p, nil
	}
	s.mu.Lock()
	c, ok := s.subjects["actor\x00"+tenant+"\x00"+issuer+"\x00"+subject]
	s.mu.Unlock()
	if ok && time.Since(c.at) < CacheFor {
		return c.pseudonym, nil
	}
	p, err := s.PseudonymOf(ctx, tenant, issuer, subject)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.subjects["actor\x00"+tenant+"\x00"+issuer+"\x00"+subject] = cached{pseudonym: p, at: time.Now()}
	s.mu.Unlock()
	return p, nil
}
