package console

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Ledger health: the newest signed checkpoint and the last full
// verification of the store, as the API serves them
// (GET /v1/checkpoints/latest, GET /v1/verify/status), each read
// authorised and recorded by the API.

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
