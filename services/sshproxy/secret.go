package sshproxy

import (
	"bytes"
	"context"
	"regexp"
	"sync"

	"github.com/auditledger/auditledger/services/gateway"
)

// SecretLabel is the label of the keyed digest of an input typed after a
// password prompt (docs/FORMAT.md §1.5).
const SecretLabel = "auditledger ssh secret v1\n"

// The gateway cannot see the target terminal's echo flag. So it guesses:
// when the last line the terminal showed, without its escape codes, ends
// in a prompt for a secret ("Password:", "[sudo] password for ann:",
// "Enter passphrase for key …:", "PIN:", "Verification code:"), what the
// client types next, up to the end of the line, is recorded as its keyed
// digest only: [MASKED:hmac:…] in place of the bytes, the line's end
// kept. A prompt the pattern misses records the input as it is (with the
// detectors' replacements); a line that merely ends so masks an input
// that was not secret.
var (
	promptRE = regexp.MustCompile(`(?i)(password|passphrase|passcode|\bpin\b|verification code|one-time code|\botp\b|token)[^\n]{0,100}[:?]\s*$`)
	escapeRE = regexp.MustCompile("\x1b(\\[[0-9;?]*[ -/]*[@-~]|\\][^\x07\x1b]*(\x07|\x1b\\\\)|[()][0-9A-Za-z]|[=>])")
)

// secretMask sits between a pty session's streams and their records.
type secretMask struct {
	mu     sync.Mutex
	tail   []byte // the last bytes of output
	secret []byte // an input being masked
	active bool
	masked int
	digest func(b []byte) string // nil without a key
}

func newSecretMask(ctx context.Context, s *gateway.Session) *secretMask {
	m := &secretMask{}
	if keyed, err := s.Keyed(ctx); err == nil && keyed != nil {
		m.digest = func(b []byte) string { return keyed(SecretLabel, b) }
	}
	return m
}

// output notes what the terminal showed.
func (m *secretMask) output(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tail = append(m.tail, b...)
	if len(m.tail) > 512 {
		m.tail = m.tail[len(m.tail)-512:]
	}
}

// input returns what to record of b, typed by the client.
func (m *secretMask) input(b []byte) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.active {
		line := m.tail
		if i := bytes.LastIndexAny(line, "\r\n"); i >= 0 && i < len(line)-1 {
			line = line[i+1:]
		}
		if !promptRE.Match(escapeRE.ReplaceAll(line, nil)) {
			return b
		}
		m.active, m.secret = true, m.secret[:0]
		m.tail = m.tail[:0] // this prompt is answered once
	}
	end := bytes.IndexAny(b, "\r\n")
	if end < 0 {
		m.secret = append(m.secret, b...)
		return nil
	}
	m.secret = append(m.secret, b[:end]...)
	m.active = false
	m.masked++
	mark := "[MASKED]"
	if m.digest != nil {
		mark = "[MASKED:" + m.digest(m.secret) + "]"
	}
	clear(m.secret)
	m.secret = m.secret[:0]
	return append([]byte(mark), b[end:]...)
}

// flush is what is left of an input being masked when the stream ends.
func (m *secretMask) flush() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.active {
		return nil
	}
	m.active = false
	m.masked++
	if m.digest != nil {
		return []byte("[MASKED:" + m.digest(m.secret) + "]")
	}
	return []byte("[MASKED]")
}
