package gateway

import (
	"sync/atomic"
	"time"
)

// Stage is one step of a command's way through a gateway, from the
// client's request to the release of its answer.
type Stage int

// The stages of a command, in the order a command passes them. A
// gateway times those its protocol has; the core times StageEvent (its
// part: envelope, scrub, payload encoding), StageEncode and StageStored.
const (
	// StageClient: the answer to the previous command released, until
	// this command is read (the client's turn, and the read itself).
	StageClient Stage = iota
	// StageJudge: the policy's decision (deny, approval, parsing the
	// statement for it).
	StageJudge
	// StageEvent: the command's record built (fields, the detectors'
	// scrub, the envelope).
	StageEvent
	// StageEncode: the record encoded and handed to the emitter.
	StageEncode
	// StageForward: the command written to the target.
	StageForward
	// StageTarget: forwarded until the target's first answer.
	StageTarget
	// StageHold: the target's first answer held until the record was
	// stored (before-response; zero when it already was).
	StageHold
	// StageRespond: the answer relayed to the client, with its
	// response.digest built and handed on, until it is released.
	StageRespond
	// StageStored: the record handed to the emitter until the bus
	// acknowledged it (overlaps StageForward, StageTarget and
	// StageHold before the response; before forwarding it is waited for
	// in place).
	StageStored
	nStages
)

var stageNames = [nStages]string{"client", "judge", "event", "encode", "forward", "target", "hold", "respond", "stored"}

func (s Stage) String() string {
	if s < 0 || s >= nStages {
		return "stage?"
	}
	return stageNames[s]
}

// Stages adds up how long commands spend in each Stage. A nil *Stages
// times nothing and costs one comparison, so a gateway keeps its calls
// in place; `auditledger bench proxy` sets one to print where a
// statement's time goes. Safe for concurrent use.
type Stages struct {
	ns, n [nStages]atomic.Int64
}

// Now is time.Now when s times anything, else the zero time.
func (s *Stages) Now() time.Time {
	if s == nil {
		return time.Time{}
	}
	return time.Now()
}

// Since adds the time from t until now to stage st and returns now, so
// that the next stage can start from it. It does nothing on a nil
// *Stages or a zero t.
func (s *Stages) Since(st Stage, t time.Time) time.Time {
	if s == nil || t.IsZero() {
		return time.Time{}
	}
	now := time.Now()
	s.Add(st, now.Sub(t))
	return now
}

// Add adds d to stage st.
func (s *Stages) Add(st Stage, d time.Duration) {
	if s == nil {
		return
	}
	s.ns[st].Add(int64(d))
	s.n[st].Add(1)
}

// StageTotal is what one stage took over the commands timed.
type StageTotal struct {
	Stage Stage
	Total time.Duration
	Count int64
}

// Take returns each stage's totals since the last Take, and starts
// again from zero.
func (s *Stages) Take() []StageTotal {
	if s == nil {
		return nil
	}
	out := make([]StageTotal, nStages)
	for i := range out {
		out[i] = StageTotal{Stage: Stage(i), Total: time.Duration(s.ns[i].Swap(0)), Count: s.n[i].Swap(0)}
	}
	return out
}
