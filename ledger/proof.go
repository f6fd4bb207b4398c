package ledger

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// RootMismatchError reports a proof or a recomputation that led to a root
// other than the one expected.
type RootMismatchError struct {
	Expected, Calculated Hash
}

func (e *RootMismatchError) Error() string {
	return fmt.Sprintf("root mismatch: expected %s, calculated %s", e.Expected.Base64(), e.Calculated.Base64())
}

// VerifyInclusion checks an RFC 6962 inclusion proof (RFC 9162 §2.1.3.2).
func VerifyInclusion(leaf Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size {
		return fmt.Errorf("%w: index %d not below tree size %d", ErrBadProof, index, size)
	}
	fn, sn, r := index, size-1, leaf
	for _, p := range proof {
		if sn == 0 {
			return fmt.Errorf("%w: proof has %d hashes, too many for index %d in size %d", ErrBadProof, len(proof), index, size)
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: proof has %d hashes, too few for index %d in size %d", ErrBadProof, len(proof), index, size)
	}
	if r != root {
		return fmt.Errorf("%w: %w", ErrBadProof, &RootMismatchError{Expected: root, Calculated: r})
	}
	return nil
}

// VerifyConsistency checks an RFC 6962 consistency proof between sizes m ≤ n
// (RFC 9162 §2.1.4.2).
func VerifyConsistency(m, n uint64, proof []Hash, oldRoot, newRoot Hash) error {
	switch {
	case m > n:
		return fmt.Errorf("%w: old size %d exceeds new size %d", ErrBadProof, m, n)
	case m == n:
		if len(proof) != 0 {
			return fmt.Errorf("%w: equal sizes need an empty proof, got %d hashes", ErrBadProof, len(proof))
		}
		if oldRoot != newRoot {
			return fmt.Errorf("%w: %w", ErrBadProof, &RootMismatchError{Expected: oldRoot, Calculated: newRoot})
		}
		return nil
	case m == 0:
		if len(proof) != 0 {
			return fmt.Errorf("%w: consistency from the empty tree needs an empty proof", ErrBadProof)
		}
		return nil
	}
	if len(proof) == 0 {
		return fmt.Errorf("%w: empty proof for %d→%d", ErrBadProof, m, n)
	}
	path := proof
	if m&(m-1) == 0 {
		path = append([]Hash{oldRoot}, proof...)
	}
	fn, sn := m-1, n-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := path[0], path[0]
	for _, c := range path[1:] {
		if sn == 0 {
			return fmt.Errorf("%w: proof too long for %d→%d", ErrBadProof, m, n)
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return fmt.Errorf("%w: proof too short for %d→%d", ErrBadProof, m, n)
	}
	if fr != oldRoot {
		return fmt.Errorf("%w: old %w", ErrBadProof, &RootMismatchError{Expected: oldRoot, Calculated: fr})
	}
	if sr != newRoot {
		return fmt.Errorf("%w: new %w", ErrBadProof, &RootMismatchError{Expected: newRoot, Calculated: sr})
	}
	return nil
}

// InclusionProofHeader is the first line of a C2SP tlog-proof.
const InclusionProofHeader = "c2sp.org/tlog-proof@v1"

// ConsistencyProofHeader is the first line of our consistency proof text form.
const ConsistencyProofHeader = "auditledger.dev/tlog-consistency@v1"

// InclusionProofText is a parsed C2SP tlog-proof@v1.
type InclusionProofText struct {
	Extra      []byte // optional, unauthenticated
	Index      uint64
	Hashes     []Hash
	Checkpoint []byte // the signed checkpoint, verbatim
}

// Marshal encodes p in the tlog-proof@v1 text format.
func (p *InclusionProofText) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(InclusionProofHeader + "\n")
	if p.Extra != nil {
		b.WriteString("extra " + base64Std(p.Extra) + "\n")
	}
	fmt.Fprintf(&b, "index %d\n", p.Index)
	for _, h := range p.Hashes {
		b.WriteString(h.Base64() + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseInclusionProof parses the tlog-proof@v1 text format. It does not
// verify anything; see VerifyInclusionProof.
func ParseInclusionProof(data []byte) (*InclusionProofText, error) {
	head, cp, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: tlog-proof: no empty line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != InclusionProofHeader {
		return nil, fmt.Errorf("%w: tlog-proof: first line %q, want %q", ErrMalformed, lines[0], InclusionProofHeader)
	}
	p := &InclusionProofText{Checkpoint: cp}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		b, err := decodeBase64(strings.TrimPrefix(lines[0], "extra "))
		if err != nil {
			return nil, fmt.Errorf("%w: tlog-proof: extra: %v", ErrMalformed, err)
		}
		p.Extra = b
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return nil, fmt.Errorf("%w: tlog-proof: missing index line", ErrMalformed)
	}
	idx, err := parseDecimal(strings.TrimPrefix(lines[0], "index "))
	if err != nil {
		return nil, fmt.Errorf("%w: tlog-proof: index: %v", ErrMalformed, err)
	}
	p.Index = idx
	for i, l := range lines[1:] {
		h, err := parseBase64Hash(l)
		if err != nil {
			return nil, fmt.Errorf("%w: tlog-proof: proof line %d: %v", ErrMalformed, i+1, err)
		}
		p.Hashes = append(p.Hashes, h)
	}
	if _, err := ParseCheckpointBody(cp); err != nil {
		return nil, fmt.Errorf("tlog-proof: %w", err)
	}
	return p, nil
}

// VerifyInclusionProof checks a tlog-proof for the record's bytes: the
// record parses (a bound record's event matches its digest, since the leaf
// does not cover the event) and its index is the proof's, then the
// checkpoint signature under v, then the Merkle path to its root.
func VerifyInclusionProof(data, record []byte, v *NoteVerifier) (*Checkpoint, error) {
	p, err := ParseInclusionProof(data)
	if err != nil {
		return nil, err
	}
	r, err := ParseRecord(record)
	if err != nil {
		return nil, fmt.Errorf("the record: %w", err)
	}
	if r.Index != p.Index {
		return nil, fmt.Errorf("%w: the record says index %d, the proof is for index %d", ErrMalformed, r.Index, p.Index)
	}
	cp, err := OpenCheckpoint(p.Checkpoint, v)
	if err != nil {
		return nil, err
	}
	if err := VerifyInclusion(LeafHash(record), p.Index, cp.Size, p.Hashes, cp.Root); err != nil {
		return nil, fmt.Errorf("inclusion of index %d in checkpoint size %d: %w", p.Index, cp.Size, err)
	}
	return cp, nil
}

// ConsistencyProofText is our text form of an RFC 9162 consistency proof:
//
//	auditledger.dev/tlog-consistency@v1
//	old <size>
//	new <size>
//	<base64 hash>      (zero or more, in RFC 6962 §2.1.2 order)
type ConsistencyProofText struct {
	Old, New uint64
	Hashes   []Hash
}

// Marshal encodes p.
func (p *ConsistencyProofText) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nold %d\nnew %d\n", ConsistencyProofHeader, p.Old, p.New)
	for _, h := range p.Hashes {
		b.WriteString(h.Base64() + "\n")
	}
	return b.Bytes()
}

// ParseConsistencyProof parses the text form written by Marshal.
func ParseConsistencyProof(data []byte) (*ConsistencyProofText, error) {
	if !bytes.HasSuffix(data, []byte("\n")) {
		return nil, fmt.Errorf("%w: consistency proof: missing final newline", ErrMalformed)
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	if len(lines) < 3 || lines[0] != ConsistencyProofHeader {
		return nil, fmt.Errorf("%w: consistency proof: want header %q, old and new lines", ErrMalformed, ConsistencyProofHeader)
	}
	var p ConsistencyProofText
	var err error
	if p.Old, err = parseDecimal(strings.TrimPrefix(lines[1], "old ")); err != nil || !strings.HasPrefix(lines[1], "old ") {
		return nil, fmt.Errorf("%w: consistency proof: line 2 %q: want \"old <size>\"", ErrMalformed, lines[1])
	}
	if p.New, err = parseDecimal(strings.TrimPrefix(lines[2], "new ")); err != nil || !strings.HasPrefix(lines[2], "new ") {
		return nil, fmt.Errorf("%w: consistency proof: line 3 %q: want \"new <size>\"", ErrMalformed, lines[2])
	}
	for i, l := range lines[3:] {
		h, err := parseBase64Hash(l)
		if err != nil {
			return nil, fmt.Errorf("%w: consistency proof: line %d: %v", ErrMalformed, i+4, err)
		}
		p.Hashes = append(p.Hashes, h)
	}
	return &p, nil
}

// parseDecimal accepts ASCII decimal without sign or leading zeroes.
func parseDecimal(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a decimal without leading zeroes", s)
	}
	return strconv.ParseUint(s, 10, 64)
}
