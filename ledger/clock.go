package ledger

import (
	"fmt"
	"os"
	"time"

	"github.com/auditledger/auditledger/events"
)

// ClockStatus is what the writer's kernel says of its clock: whether it is
// synchronised to a time source and how far off it may be (adjtimex(2)).
// The writer seals it as a ledger.clock.status record at start and every
// hour (docs/FORMAT.md §2.1), so that the times it gives records can be
// judged by what the clock was worth then — the evidence for clock
// synchronisation (ISO/IEC 27001:2022 8.17), which sealing latency is not.
type ClockStatus struct {
	// Synchronised: the kernel's STA_UNSYNC status bit is clear (a time
	// daemon disciplines the clock).
	Synchronised bool `json:"synchronised"`
	// MaxErrorMicros and EstErrorMicros are the kernel's maximum and
	// estimated error, in microseconds.
	MaxErrorMicros int64 `json:"maxerror_us"`
	EstErrorMicros int64 `json:"esterror_us"`
	// Status is the kernel's status word (STA_* bits).
	Status int64 `json:"status"`
	// Source is the time source the operator names (ledger.clock_source),
	// when named: the kernel does not know it.
	Source string `json:"source,omitempty"`
	// Host is the writer's host name.
	Host string `json:"host"`
	// ReadError says why the clock could not be read (Synchronised is
	// then false and the errors 0); empty when it was.
	ReadError string `json:"read_error,omitempty"`
}

// ReadClockStatus reads the clock's state; source is the operator's name
// for the time source (may be empty). A clock that cannot be read is
// reported as such (ReadError), never as synchronised.
func ReadClockStatus(source string) ClockStatus {
	st, err := readClock()
	if err != nil {
		st = ClockStatus{ReadError: err.Error()}
	}
	st.Source = source
	st.Host, _ = os.Hostname()
	return st
}

// ClockEntry is the record of st, sealed at index (the log's size when it
// is appended) at time at; its source is 0, as it stands for no stream
// sequence.
func ClockEntry(origin string, index uint64, st ClockStatus, at time.Time) (Entry, error) {
	if len(st.ReadError) > maxReason {
		st.ReadError = st.ReadError[:maxReason]
	}
	st.Source = events.Clean(st.Source, 256)
	st.Host = events.Clean(st.Host, 256)
	b, err := systemRecord(origin, events.LedgerClockStatus, fmt.Sprintf("ledger/clock/%d", index), at, st)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Event: b}, nil
}
