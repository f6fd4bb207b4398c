package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
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
// (bus.HeaderSignature): "<key name> <base64 of key hash ‖ signature>".
func SignEvent(s *NoteSigner, event []byte) string {
	return s.name + " " + s.producerSig(signedMessage(event))
}

// producerSig signs msg and encodes key hash ‖ signature in base64: the
// form both producer signatures and attestations carry.
func (s *NoteSigner) producerSig(msg []byte) string {
	var b [ProducerSigSize]byte
	binary.BigEndian.PutUint32(b[:], s.hash)
	copy(b[4:], ed25519.Sign(s.key, msg))
	return base64.StdEncoding.EncodeToString(b[:])
}

// decodeProducerSig reverses producerSig's encoding.
func decodeProducerSig(b64 string) (*ProducerSig, bool) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ProducerSigSize {
		return nil, false
	}
	return parseProducerSig(raw), true
}

// verifies reports whether sig is v's signature of msg.
func (v *NoteVerifier) verifies(sig *ProducerSig, msg []byte) bool {
	return sig.KeyHash == v.hash && ed25519.Verify(v.key, msg, sig.Sig[:])
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
	name, b64, _ := strings.Cut(header, " ")
	sig, ok := decodeProducerSig(b64)
	if !ok {
		return nil, fmt.Errorf("%w: the signature header does not parse", ErrProducer)
	}
	v := p.byName[name]
	if v == nil {
		return nil, fmt.Errorf("%w: key %q is not a registered producer", ErrProducer, name)
	}
	if !v.verifies(sig, signedMessage(event)) {
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
		if v.verifies(r.Producer, msg) {
			if v.name != ev.Source.Instance {
				return fmt.Errorf("%w: signed by producer %s, but the event claims source instance %q", ErrProducer, v.name, ev.Source.Instance)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: no registered producer key (hash %08x) verifies it", ErrProducer, r.Producer.KeyHash)
}

// Producer attestations sign events in batches: a producer keeps the
// SHA-256 of each event it publishes and, every few hundred events or a
// fraction of a second, publishes a producer.attested event whose payload
// lists those digests and carries one signature over them. A verifier
// with the registry checks every attestation's signature and that every
// event claiming a registered producer is covered by one of its
// attestations — one signature per batch instead of one per event.

// Attestation is the payload of a producer.attested event.
type Attestation struct {
	Producer string `json:"producer"`
	// Boot names one run of the producer; Seq counts its attestations.
	Boot   string   `json:"boot"`
	Seq    uint64   `json:"seq"`
	Events []string `json:"events"` // base64 SHA-256 of each event, as published
	// Signature is base64(key hash ‖ Ed25519 signature) over
	// AttestationText.
	Signature string `json:"signature"`
}

// attestationContext separates attestations from every other use of a
// producer's key.
const attestationContext = "auditledger producer attestation v1\n"

// AttestationText is what a producer signs: the context line, then the
// producer, boot and sequence, then one base64 digest per line.
func AttestationText(a *Attestation) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s%s\n%s\n%d\n", attestationContext, a.Producer, a.Boot, a.Seq)
	for _, d := range a.Events {
		b.WriteString(d)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// ProducerAttester signs attestations with a producer's key; it satisfies
// the emitter's Attester.
type ProducerAttester struct{ s *NoteSigner }

// NewProducerAttester returns an attester for the producer named by the
// key.
func NewProducerAttester(s *NoteSigner) *ProducerAttester { return &ProducerAttester{s} }

// Name is the producer's name: the key name.
func (p *ProducerAttester) Name() string { return p.s.name }

// Attest returns the payload of a producer.attested event.
func (p *ProducerAttester) Attest(boot string, seq uint64, digests [][sha256.Size]byte) (json.RawMessage, error) {
	a := &Attestation{Producer: p.s.name, Boot: boot, Seq: seq, Events: make([]string, len(digests))}
	for i, d := range digests {
		a.Events[i] = base64.StdEncoding.EncodeToString(d[:])
	}
	a.Signature = p.s.producerSig(AttestationText(a))
	return json.Marshal(a)
}

// checkAttestation verifies an attestation's signature with the
// registered key named after its producer, which must be the event's
// source instance.
func (p *Producers) checkAttestation(a *Attestation, instance string) error {
	if a.Producer != instance {
		return fmt.Errorf("%w: attestation by %q in an event from source instance %q", ErrProducer, a.Producer, instance)
	}
	v := p.byName[a.Producer]
	if v == nil {
		return fmt.Errorf("%w: attestation by %q, which is not a registered producer", ErrProducer, a.Producer)
	}
	if sig, ok := decodeProducerSig(a.Signature); !ok || !v.verifies(sig, AttestationText(a)) {
		return fmt.Errorf("%w: attestation %d of %s does not verify", ErrProducer, a.Seq, a.Producer)
	}
	return nil
}
