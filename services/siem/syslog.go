package siem

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SDID is the structured-data element each syslog message carries the
// ledger's coordinates in. 32473 is the private enterprise number RFC
// 5612 reserves for documentation and examples.
const SDID = "auditledger@32473"

// Syslog sends RFC 5424 messages over TCP, or TLS (RFC 5425), framed by
// octet counting ("LEN SP MSG"). TCP gives no application-level
// acknowledgement: a batch counts as delivered once written, and before
// and after each batch the forwarder looks for a connection the receiver
// closed — then the batch is sent again on a new one (at least once).
type Syslog struct {
	Addr string      // host:port
	TLS  *tls.Config // nil: plain TCP
	// Facility is the syslog facility (default 13, log audit).
	Facility int
	// Timeout bounds a connect and a batch's write (default 10 s).
	Timeout time.Duration
	mu      sync.Mutex // one batch at a time on the connection
	conn    net.Conn
	w       *bufio.Writer
}

var _ Sequential = (*Syslog)(nil)

// Sequential: one connection carries the batches, in order.
func (s *Syslog) Sequential() {}

func (s *Syslog) String() string {
	if s.TLS != nil {
		return "syslog+tls " + s.Addr
	}
	return "syslog " + s.Addr
}

func (s *Syslog) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 10 * time.Second
}

func (s *Syslog) connect(ctx context.Context) error {
	if s.conn != nil {
		// A receiver that went away closed the connection: find out
		// before writing into it.
		s.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		_, err := s.conn.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			s.conn.SetReadDeadline(time.Time{})
			return nil
		}
		s.Close()
	}
	d := &net.Dialer{Timeout: s.timeout()}
	var c net.Conn
	var err error
	if s.TLS != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: s.TLS}).DialContext(ctx, "tcp", s.Addr)
	} else {
		c, err = d.DialContext(ctx, "tcp", s.Addr)
	}
	if err != nil {
		return err
	}
	s.conn, s.w = c, bufio.NewWriterSize(c, 64<<10)
	return nil
}

// Close closes the connection.
func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.w = nil, nil
	return err
}

// Send writes one message per item and flushes.
func (s *Syslog) Send(ctx context.Context, items []Item) (map[int]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.timeout()))
	for _, it := range items {
		msg := SyslogMessage(it, s.Facility)
		s.w.WriteString(strconv.Itoa(len(msg)))
		s.w.WriteByte(' ')
		s.w.Write(msg)
	}
	if err := s.w.Flush(); err != nil {
		s.Close()
		return nil, err
	}
	// A reset right after the write means the receiver did not take it.
	if err := s.connect(ctx); err != nil {
		return nil, fmt.Errorf("the receiver closed the connection: %w", err)
	}
	return nil, nil
}

// SyslogMessage is one RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME auditledger - MSGID [auditledger@32473 index=".." leaf=".." id=".." tenant=".."] MSG
//
// HOSTNAME is the producing instance, MSGID the event type, MSG the
// rendering.
func SyslogMessage(it Item, facility int) []byte {
	if facility == 0 {
		facility = 13
	}
	ev := it.Event
	sev := 6 // informational
	switch o, _ := severity(ev.Type); o {
	case 2:
		sev = 5 // notice
	case 3:
		sev = 4 // warning
	case 4:
		sev = 3 // error
	}
	host := printable(ev.Source.Instance, 255)
	msgid := printable(string(ev.Type), 32)
	var b strings.Builder
	fmt.Fprintf(&b, "<%d>1 %s %s auditledger - %s [%s index=\"%d\" leaf=\"%s\" id=\"%s\" tenant=\"%s\"] ",
		facility*8+sev, ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), host, msgid, SDID,
		it.Index, hex.EncodeToString(it.Leaf[:]), sdValue(ev.ID), sdValue(ev.Tenant))
	b.Write(it.Body)
	return []byte(b.String())
}

// printable keeps a header field within RFC 5424's PRINTUSASCII, or "-".
func printable(s string, max int) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(out) < max; i++ {
		if s[i] >= 33 && s[i] <= 126 {
			out = append(out, s[i])
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

// sdValue escapes a structured-data parameter value (RFC 5424 §6.3.3).
func sdValue(s string) string { return sdEscapes.Replace(s) }

var sdEscapes = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)
