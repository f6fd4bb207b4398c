package ledger

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/auditledger/auditledger/events"
)

// Producer signatures make an event's claimed origin checkable offline.
// Each producer instance (a proxy, the API, an emitter) holds its own
// Ed25519 key in the signed-note key format, named after the instance it
// is: the event's source.instance. It signs every event it publishes; the
// writer accepts a signed event only from a registered key whose name is
// the event's source instance, and keeps the signature in the record
// (version 2), so a verifier holding the registry proves that each signed
// event came from the producer it names — a party that can publish for one
// producer cannot seal events as another.

// ProducerSigSize is the size of a producer signature in a record: the
// key hash (as in signed notes) and the Ed25519 signature.
const ProducerSigSize = 4 + ed25519.SignatureSize

// producerContext separates event signatures from every other use of a
// producer's key.
const producerContext = "auditledger event v1\n"

// ProducerSig is a producer's signature of one event.
type ProducerSig struct {
	KeyHash uint32
	Sig     [ed25519.SignatureSize]byte
}

func (p *ProducerSig) appendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.KeyHash)
	return append(b, p.Sig[:]...)
}

func parseProducerSig(b []byte) *ProducerSig {
	p := &ProducerSig{KeyHash: binary.BigEndian.Uint32(b)}
	copy(p.Sig[:], b[4:])
	return p
}

func signedMessage(event []byte) []byte {
	return append([]byte(producerContext), event...)
}

// SignEvent signs an encoded event with a producer's key and returns the
// value of the header that carries it to the writer
// (emitter.SignatureHeader): "<key name> <base64 of key hash ‖ signature>".
func SignEvent(s *NoteSigner, event []byte) string {
	sig := ed25519.Sign(s.key, signedMessage(event))
	var b [ProducerSigSize]byte
	binary.BigEndian.PutUint32(b[:], s.hash)
	copy(b[4:], sig)
	return s.name + " " + base64.StdEncoding.EncodeToString(b[:])
}

// Producers is a registry of producer verifier keys.
type Producers struct {
	byName map[string]*NoteVerifier
	byHash map[uint32][]*NoteVerifier
}

// ParseProducers reads a registry: one verifier key per line (as
// `auditledger keys generate --file NAME` writes them); blank lines and
// lines starting with # are ignored. Key names must be distinct.
func ParseProducers(text string) (*Producers, error) {
	p := &Producers{byName: map[string]*NoteVerifier{}, byHash: map[uint32][]*NoteVerifier{}}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := NewNoteVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("producers line %d: %w", i+1, err)
		}
		if p.byName[v.name] != nil {
			return nil, fmt.Errorf("producers line %d: a second key named %q", i+1, v.name)
		}
		p.byName[v.name] = v
		p.byHash[v.hash] = append(p.byHash[v.hash], v)
	}
	if len(p.byName) == 0 {
		return nil, fmt.Errorf("%w: the producer registry holds no keys", ErrBadKey)
	}
	return p, nil
}

// Len is the number of registered producers.
func (p *Producers) Len() int {
	if p == nil {
		return 0
	}
	return len(p.byName)
}

// ErrProducer means an event's producer signature is missing, invalid, or
// by a key that may not speak for the event's source.
var ErrProducer = errors.New("producer signature")

// CheckHeader checks a SignEvent value against the registry and
// the event's source, and returns the signature to keep in the record.
func (p *Producers) CheckHeader(header string, event []byte, src events.Source) (*ProducerSig, error) {
	name, b64, ok := strings.Cut(header, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) != ProducerSigSize {
		return nil, fmt.Errorf("%w: the signature header does not parse", ErrProducer)
	}
	v := p.byName[name]
	if v == nil {
		return nil, fmt.Errorf("%w: key %q is not a registered producer", ErrProducer, name)
	}
	sig := parseProducerSig(raw)
	if sig.KeyHash != v.hash || !ed25519.Verify(v.key, signedMessage(event), sig.Sig[:]) {
		return nil, fmt.Errorf("%w: the signature by %s does not verify", ErrProducer, name)
	}
	if src.Instance != name {
		return nil, fmt.Errorf("%w: producer %s signed an event that claims source instance %q", ErrProducer, name, src.Instance)
	}
	return sig, nil
}

// check verifies a record's signature: by a registered key whose name is
// the event's source instance.
func (p *Producers) check(r Record) error {
	var ev struct {
		Source struct {
			Instance string `json:"instance"`
		} `json:"source"`
	}
	if err := json.Unmarshal(r.Event, &ev); err != nil {
		return fmt.Errorf("%w: event does not parse: %v", ErrProducer, err)
	}
	msg := signedMessage(r.Event)
	for _, v := range p.byHash[r.Producer.KeyHash] {
		if ed25519.Verify(v.key, msg, r.Producer.Sig[:]) {
			if v.name != ev.Source.Instance {
				return fmt.Errorf("%w: signed by producer %s, but the event claims source instance %q", ErrProducer, v.name, ev.Source.Instance)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no registered producer key (hash %08x) verifies it", ErrProducer, r.Producer.KeyHash)
}
