// Package alertstest holds a Slack-compatible incoming-webhook receiver
// for the alerter's tests: it checks each message as Slack would (a JSON
// object, text within 40,000 characters, section text within 3,000), and
// counts the alerts it accepted by their id, the receiver's dedup key.
package alertstest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Slack is a Slack-compatible incoming-webhook receiver.
type Slack struct {
	// Poison is text that, found in a message, makes the receiver refuse
	// it (400), as Slack refuses a malformed message.
	Poison string

	mu       sync.Mutex
	down     bool
	got      map[string]int
	times    map[string]time.Time // first acceptance of each alert id
	bodies   [][]byte
	Requests int
	Refused  int
	Invalid  []string // messages Slack would have refused, and why
}

// NewSlack returns a receiver that accepts every valid message.
func NewSlack() *Slack { return &Slack{got: map[string]int{}, times: map[string]time.Time{}} }

// Down makes the receiver answer 503 (true) or accept again (false).
func (s *Slack) Down(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// alertID finds the alert id the alerter writes in its context block.
var alertID = regexp.MustCompile("auditledger `?(alert/[a-z0-9_-]+/[0-9]+)")

// Message is what the receiver reads.
type Message struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"elements"`
	} `json:"blocks"`
}

func (s *Slack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Requests++
	if s.down {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	var m Message
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
		s.Invalid = append(s.Invalid, "not a JSON POST")
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if why := check(m); why != "" {
		s.Invalid = append(s.Invalid, why)
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	if s.Poison != "" && strings.Contains(string(body), s.Poison) {
		s.Refused++
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	id := ""
	for _, b := range m.Blocks {
		for _, e := range b.Elements {
			if sm := alertID.FindStringSubmatch(e.Text); sm != nil {
				id = sm[1]
			}
		}
	}
	if id == "" {
		s.Invalid = append(s.Invalid, "no alert id in the context block")
	}
	if s.got[id] == 0 {
		s.times[id] = time.Now()
	}
	s.got[id]++
	s.bodies = append(s.bodies, body)
	fmt.Fprint(w, "ok")
}

// check is what Slack refuses in a message.
func check(m Message) string {
	if m.Text == "" || utf8.RuneCountInString(m.Text) > 40000 {
		return fmt.Sprintf("text of %d characters", utf8.RuneCountInString(m.Text))
	}
	if len(m.Blocks) == 0 || len(m.Blocks) > 50 {
		return fmt.Sprintf("%d blocks", len(m.Blocks))
	}
	for i, b := range m.Blocks {
		switch b.Type {
		case "section":
			if b.Text == nil || b.Text.Text == "" || utf8.RuneCountInString(b.Text.Text) > 3000 {
				return fmt.Sprintf("block %d: section text missing or over 3,000 characters", i)
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > 10 {
				return fmt.Sprintf("block %d: %d context elements", i, len(b.Elements))
			}
		default:
			return fmt.Sprintf("block %d: type %q", i, b.Type)
		}
	}
	return ""
}

// RequestsOf is how many requests s has had, accepted or not.
func RequestsOf(s *Slack) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Requests
}

// Got counts the accepted messages by alert id.
func (s *Slack) Got() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// FirstAccepted is when the receiver first accepted alert id.
func (s *Slack) FirstAccepted(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.times[id]
	return t, ok
}

// Bodies are the accepted messages, as received.
func (s *Slack) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// InvalidMessages are the reasons Slack would have refused messages.
func (s *Slack) InvalidMessages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.Invalid...)
}
