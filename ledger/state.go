package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/auditledger/auditledger/events"
)

// logState is what a reader of the log carries from one record to the
// next: the writer's recovery and the verifier share it, so both apply the
// same rules to every segment.
type logState struct {
	size       uint64
	chain      Hash
	lastTime   int64 // Unix nanoseconds
	lastSource uint64
	// lastSourceSeg names the segment of the record that set lastSource:
	// the events of one batch message share a source, and are sealed in
	// one segment.
	lastSourceSeg string
	cr            compactRange
	tree          *Tree // nil unless proofs are wanted
	gaps          []Gap // the gap records seen
	rejected      int   // the rejection records seen
	// retention is the retention the records seen so far recorded (the
	// writer's ledger.retention.changed records, folded); nil: none.
	retention *Retention
	// producers, if set, checks every producer signature; signed counts
	// the signed records.
	producers *Producers
	signed    int
	// With producers: the digests each verified attestation covers, and
	// the events that need one.
	attested map[[32]byte]string
	claims   []claim

	// atSize, if set, is called when the log reaches size want.
	want   uint64
	atSize func(size uint64) error
}

func (st *logState) root() Hash {
	if st.tree != nil {
		r, _ := st.tree.Root(st.size)
		return r
	}
	return st.cr.root()
}

// apply checks one segment against the state and extends the state with
// it. leaves are the segment's leaf hashes, computed by the caller (in
// parallel, for the verifier). On error the state is unusable.
func (st *logState) apply(name string, seg *Segment, leaves []Hash) error {
	if n, ok := parseObjectNumber(name, SegmentPrefix, segmentSuffix); !ok || n != seg.First {
		return verr(name, -1, "segment name does not match its first index (segments swapped or renamed?)", SegmentName(seg.First), name)
	}
	switch {
	case seg.First > st.size:
		return verr(name, int64(st.size), fmt.Sprintf("records %d..%d missing (segment deleted?)", st.size, seg.First-1),
			fmt.Sprintf("next segment to start at index %d", st.size), fmt.Sprintf("segment starting at %d", seg.First))
	case seg.First < st.size:
		return verr(name, int64(seg.First), "segment overlaps records already seen",
			fmt.Sprintf("first index %d", st.size), fmt.Sprintf("%d", seg.First))
	}
	if seg.PrevChain != st.chain {
		return verr(name, int64(seg.First), "chain value before the segment's first record", st.chain.String(), seg.PrevChain.String())
	}
	for i, raw := range seg.Records {
		idx := seg.First + uint64(i)
		r, err := ParseRecord(raw)
		if err != nil {
			return verr(name, int64(idx), "record does not parse", "a record of version 1 to 4 (FORMAT §2)", err.Error())
		}
		if r.Index != idx {
			return verr(name, int64(idx), "record index (records reordered or moved?)", fmt.Sprint(idx), fmt.Sprint(r.Index))
		}
		t := r.Time.UnixNano()
		if t < st.lastTime {
			return verr(name, int64(idx), "record time went backwards",
				"at or after "+time.Unix(0, st.lastTime).UTC().Format(time.RFC3339Nano), r.Time.Format(time.RFC3339Nano))
		}
		if r.Source != 0 {
			if err := st.checkSource(name, idx, r); err != nil {
				return err
			}
			st.lastSource, st.lastSourceSeg = r.Source, name
		} else if err := st.noteDirect(name, idx, r); err != nil {
			return err
		}
		if r.Producer != nil {
			st.signed++
			if st.producers != nil {
				if err := st.producers.check(r); err != nil {
					return verr(name, int64(idx), "producer signature (event forged or altered?)", "a signature by the producer the event names", err.Error())
				}
			}
		} else if st.producers != nil {
			if err := st.noteProducer(name, idx, r); err != nil {
				return err
			}
		}
		st.lastTime = t
		leaf := leaves[i]
		st.chain = ChainHash(st.chain, leaf)
		st.cr.append(leaf)
		if st.tree != nil {
			st.tree.Append(leaf)
		}
		st.size++
		// The hook for the segment's end runs after the trailer checks,
		// which name the segment.
		if st.atSize != nil && st.size == st.want && st.size != seg.End() {
			if err := st.atSize(st.size); err != nil {
				return err
			}
		}
	}
	if seg.Chain != st.chain {
		return verr(name, int64(seg.End()-1), "chain value in segment trailer", st.chain.String(), seg.Chain.String())
	}
	if root := st.root(); seg.Root != root {
		return verr(name, int64(seg.End()-1), fmt.Sprintf("tree root at size %d in segment trailer", seg.End()), root.Base64(), seg.Root.Base64())
	}
	if st.atSize != nil && st.size == st.want {
		if err := st.atSize(st.size); err != nil {
			var ve *VerifyError
			if errors.As(err, &ve) && ve.Object != name {
				ve.Check += fmt.Sprintf(" (records %d..%d in %s changed?)", seg.First, seg.End()-1, name)
			}
			return err
		}
	}
	return nil
}

func leafHashes(seg *Segment) []Hash {
	leaves := make([]Hash, len(seg.Records))
	for i, r := range seg.Records {
		leaves[i] = LeafHash(r)
	}
	return leaves
}

// claim is an event that must be covered by an attestation of the
// producer it names.
type claim struct {
	index    uint64
	instance string
	digest   [32]byte
}

// noteProducer checks an attestation record, or notes an event that needs
// one; the ledger's own records need none.
func (st *logState) noteProducer(name string, idx uint64, r Record) error {
	if bytes.HasPrefix(r.Event, []byte(SystemPrefix)) {
		return nil
	}
	var ev struct {
		Type   events.Type `json:"type"`
		Source struct {
			Instance string `json:"instance"`
		} `json:"source"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(r.Event, &ev); err != nil {
		return verr(name, int64(idx), "event does not parse", "a JSON event", err.Error())
	}
	if ev.Type != events.ProducerAttested {
		st.claims = append(st.claims, claim{idx, ev.Source.Instance, sha256.Sum256(r.Event)})
		return nil
	}
	var a Attestation
	if err := json.Unmarshal(ev.Payload, &a); err != nil {
		return verr(name, int64(idx), "producer attestation payload", "producer, boot, seq, events, signature", err.Error())
	}
	if err := st.producers.checkAttestation(&a, ev.Source.Instance); err != nil {
		return verr(name, int64(idx), "producer attestation (forged or altered?)", "a signature by the producer it names", err.Error())
	}
	if st.attested == nil {
		st.attested = map[[32]byte]string{}
	}
	for _, d := range a.Events {
		b, err := base64.StdEncoding.DecodeString(d)
		if err != nil || len(b) != 32 {
			return verr(name, int64(idx), "producer attestation digest", "base64 SHA-256", d)
		}
		st.attested[[32]byte(b)] = a.Producer
	}
	return nil
}

// unattested returns the events not covered by an attestation of the
// producer they name.
func (st *logState) unattested() (attested int, missing []Unattested) {
	for _, c := range st.claims {
		if st.attested[c.digest] == c.instance {
			attested++
			continue
		}
		missing = append(missing, Unattested{Index: c.index, Instance: c.instance})
	}
	return attested, missing
}
