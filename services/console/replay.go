package console

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Replay: a terminal session (SSH, kubectl exec) played in the page. The
// cast is the API's (GET /v1/sessions/{id}/cast): rebuilt from the
// session.output chunks as recorded, so redacted as recorded, and the
// API authorises it and records the view as audit.accessed. The page
// carries the cast and a transcript (the output without its escape
// sequences) for readers without JavaScript; static/replay.js plays it
// on a character grid.

// replayPage is /console/sessions/{tenant}/{id}/replay.
func (c *Console) replayPage(w http.ResponseWriter, r *http.Request) {
	tenant, id := chi.URLParam(r, "tenant"), chi.URLParam(r, "id")
	out := c.call(r, "/v1/sessions/"+url.PathEscape(id)+"/cast", url.Values{"tenant": {tenant}}, nil)
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return
	}
	cast := out.body.String()
	p := page{Title: "Replay of " + id, Tenant: tenant, SessionID: id, Replay: replayOf(cast)}
	p.Replay.Timeline = "/console/sessions/" + url.PathEscape(tenant) + "/" + url.PathEscape(id)
	p.Replay.Download = p.Replay.Timeline + "/cast"
	c.render(w, r, http.StatusOK, "replay", p)
}

// castDownload is /console/sessions/{tenant}/{id}/cast: the API's cast as
// a file asciinema plays (a read of its own, recorded by the API).
func (c *Console) castDownload(w http.ResponseWriter, r *http.Request) {
	tenant, id := chi.URLParam(r, "tenant"), chi.URLParam(r, "id")
	out := c.call(r, "/v1/sessions/"+url.PathEscape(id)+"/cast", url.Values{"tenant": {tenant}}, nil)
	if out.status != http.StatusOK {
		c.refusedBy(w, r, out)
		return
	}
	w.Header().Set("Content-Type", "application/x-asciicast")
	w.Header().Set("Content-Disposition", `attachment; filename="`+safeName(tenant+"-"+id)+`.cast"`)
	w.Write(out.body.Bytes())
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// replay is what the replay page shows.
type replay struct {
	Cast               string // the asciicast v2 file, for the player
	Transcript         string // the output, escape sequences removed
	Width, Height      int
	Frames             int
	Seconds            float64
	Input              bool // the cast holds keystrokes
	Timeline, Download string
}

// escapes are the terminal's control sequences a transcript leaves out:
// CSI, OSC (ended by BEL or ST), and two-byte escapes.
var escapes = regexp.MustCompile(`\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]`)

// replayOf reads an asciicast v2 file for the page. The API wrote it, so
// a line it cannot read is skipped, not fatal (the player reads the same
// file).
func replayOf(cast string) *replay {
	rp := &replay{Cast: cast, Width: 80, Height: 24}
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(cast))
	sc.Buffer(nil, 1<<26)
	first := true
	for sc.Scan() {
		line := sc.Bytes()
		if first {
			first = false
			var h struct{ Width, Height int }
			if json.Unmarshal(line, &h) == nil && h.Width > 0 && h.Height > 0 {
				rp.Width, rp.Height = h.Width, h.Height
			}
			continue
		}
		var f []any
		if json.Unmarshal(bytes.TrimSpace(line), &f) != nil || len(f) != 3 {
			continue
		}
		t, _ := f[0].(float64)
		kind, _ := f[1].(string)
		data, _ := f[2].(string)
		rp.Frames++
		rp.Seconds = max(rp.Seconds, t)
		switch kind {
		case "o":
			out.WriteString(data)
		case "i":
			rp.Input = true
		}
	}
	s := strings.ReplaceAll(out.String(), "\r\n", "\n")
	rp.Transcript = escapes.ReplaceAllString(s, "")
	return rp
}
