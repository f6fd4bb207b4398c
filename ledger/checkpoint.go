package ledger

import (
	"bytes"
	"fmt"
	"strings"
)

// Checkpoint is a C2SP tlog-checkpoint: a signed tree head.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	// Signed is the whole signed note, verbatim. Empty for a body that
	// was parsed but not opened.
	Signed []byte
}

// Body is the note text: origin, size and root, one per line.
func (c *Checkpoint) Body() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, c.Root.Base64())
}

// ParseCheckpointBody parses the note text of a checkpoint, or a whole
// signed note (the signatures are ignored: use OpenCheckpoint to check
// them). We never write extension lines, which tlog-checkpoint does not
// recommend, and refuse them on reading so nothing unsigned-looking can hide
// in a checkpoint we accept.
func ParseCheckpointBody(b []byte) (*Checkpoint, error) {
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		b = b[:i+1]
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: checkpoint must end in a newline", ErrMalformed)
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("%w: checkpoint has %d lines, want origin, size and root", ErrMalformed, len(lines))
	}
	if len(lines) > 3 {
		return nil, fmt.Errorf("%w: checkpoint has extension lines, which this log never writes", ErrMalformed)
	}
	if lines[0] == "" {
		return nil, fmt.Errorf("%w: checkpoint origin is empty", ErrMalformed)
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint size: %v", ErrMalformed, err)
	}
	root, err := parseBase64Hash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint root: %v", ErrMalformed, err)
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// SignCheckpoint signs a checkpoint of the given size and root. The origin
// is the signer's key name, as tlog-checkpoint recommends.
func SignCheckpoint(s *NoteSigner, size uint64, root Hash) (*Checkpoint, error) {
	c := &Checkpoint{Origin: s.Name(), Size: size, Root: root}
	signed, err := s.SignNote(c.Body())
	if err != nil {
		return nil, err
	}
	c.Signed = signed
	return c, nil
}

// OpenCheckpoint verifies the signature of a signed checkpoint under v and
// parses it. The origin must equal the key name.
func OpenCheckpoint(signed []byte, v *NoteVerifier) (*Checkpoint, error) {
	text, err := v.OpenNote(signed)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := ParseCheckpointBody(text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.Name() {
		return nil, fmt.Errorf("%w: checkpoint origin %q differs from key name %q", ErrBadSignature, c.Origin, v.Name())
	}
	c.Signed = signed
	return c, nil
}
