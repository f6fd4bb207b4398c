package console

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/auditledger/auditledger/services/api"
)

// Ledger health: the newest signed checkpoint, the last full
// verification of the store and the other processes (writers' leases,
// forwarders' consumers, projectors' cursors, producers' newest records
// and gateways' heartbeats), as the API serves
// them (GET /v1/checkpoints/latest, GET /v1/verify/status,
// GET /v1/processes), each read authorised and recorded by the API.

// health is what the health page shows.
type health struct {
	Origin, Size, Root string
	Extensions         []string
	Signers            []signer
	Checkpoint         string // verbatim
	// Verified is the last full verification; NoVerification says why
	// there is none.
	Verified       *verification
	NoVerification string
	// Processes are the other processes as the API reads them; Ago says
	// how long before the report each was last heard from.
	Processes  *api.ProcessesReport
	Stale      int    // how many are flagged stale
	StaleAfter string // the report's stale_after, for reading
}

func stale(state string) int {
	if state == "stale" {
		return 1
	}
	return 0
}

// ago is how long before now t was, rounded for reading.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return d.Round(time.Second).String() + " ago"
	case d < 48*time.Hour:
		return d.Round(time.Minute).String() + " ago"
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

type signer struct{ Name, KeyHash string }

type verification struct {
	Started, Finished time.Time
	OK                bool
	Size              uint64
	Root              string
	Gaps              int
	Error             string
}

func (c *Console) healthPage(w http.ResponseWriter, r *http.Request) {
	out := c.call(r, "/v1/checkpoints/latest", nil, nil)
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return
	}
	h := parseCheckpoint(out.body.String())
	out = c.call(r, "/v1/verify/status", nil, nil)
	switch out.status {
	case http.StatusOK:
		var v verification
		if err := json.Unmarshal(out.body.Bytes(), &v); err != nil {
			c.cfg.Logger.Error("console: reading the API's answer", "err", err)
			c.render(w, r, http.StatusInternalServerError, "refusal", page{Title: "Error", Refusal: &refusal{Status: 500, Detail: "internal error"}})
			return
		}
		h.Verified = &v
	case http.StatusNotFound:
		h.NoVerification = "no full verification has run yet (the projector runs one at its start and on its schedule)"
	default:
		c.refusedBy(w, r, out)
		return
	}
	var rep api.ProcessesReport
	if !c.get(w, r, "/v1/processes", nil, &rep) {
		return
	}
	h.Processes = &rep
	h.StaleAfter = time.Duration(rep.StaleAfter * float64(time.Second)).String()
	for _, p := range rep.Writers {
		h.Stale += stale(p.State)
	}
	for _, p := range rep.Forwarders {
		h.Stale += stale(p.State)
	}
	for _, p := range rep.Projectors {
		h.Stale += stale(p.State)
	}
	for _, p := range rep.Producers {
		// Quiet but alive (records stale, heartbeat recent) is no
		// trouble; a lost heartbeat is.
		switch {
		case p.Liveness == "stale":
			h.Stale++
		case p.Liveness != "alive":
			h.Stale += stale(p.State)
		}
	}
	c.render(w, r, http.StatusOK, "health", page{Title: "Ledger health", Health: h})
}

// parseCheckpoint reads a C2SP tlog-checkpoint for display: origin,
// size, root, extension lines and each signature's name and key hash.
// It checks nothing.
func parseCheckpoint(cp string) *health {
	h := &health{Checkpoint: cp}
	body, sigs, _ := strings.Cut(cp, "\n\n")
	lines := strings.Split(body, "\n")
	if len(lines) >= 3 {
		h.Origin, h.Size, h.Root = lines[0], lines[1], lines[2]
		h.Extensions = lines[3:]
	}
	for _, l := range strings.Split(sigs, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "—" {
			continue
		}
		s := signer{Name: f[1]}
		if raw, err := base64.StdEncoding.DecodeString(f[2]); err == nil && len(raw) >= 4 {
			s.KeyHash = hex.EncodeToString(raw[:4])
		}
		h.Signers = append(h.Signers, s)
	}
	return h
}
