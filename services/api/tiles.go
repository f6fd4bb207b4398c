package api

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/projections"
)

// C2SP tlog-tiles: the log served as tiles under /v1/log — checkpoint,
// hash tiles (/tile/<L>/<N>[.p/<W>]) and entry bundles
// (/tile/entries/<N>[.p/<W>]), tiles of height 8 — so a standard client
// verifies inclusion and consistency with no auditledger code. Entries are
// the exact record bytes (the leaf hash covers them). Like every call they
// need a token of the auditor or security role, and each read is recorded.

const tileHeight = 8

// tilePath parses the C2SP path after /tile/ into x/mod's tile
// coordinates (whose paths carry the height, and "data" for entries).
func tilePath(rest string) (tlog.Tile, error) {
	level, n, ok := strings.Cut(rest, "/")
	if !ok {
		return tlog.Tile{}, badParam("tile", "want /tile/<L>/<N>[.p/<W>] or /tile/entries/<N>[.p/<W>]")
	}
	if level == "entries" {
		level = "data"
	}
	t, err := tlog.ParseTilePath(fmt.Sprintf("tile/%d/%s/%s", tileHeight, level, n))
	if err != nil {
		return tlog.Tile{}, badParam("tile", "%q is not a tile path (C2SP tlog-tiles)", rest)
	}
	return t, nil
}

func (a *api) tile(w http.ResponseWriter, r *http.Request) {
	rest := chi.URLParam(r, "*")
	t, err := tilePath(rest)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	_, size, err := a.checkpointAt(r, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// The tile's last hash (or entry) must be in the signed tree.
	level := max(t.L, 0)
	beyond := level >= 8 || uint64(t.N) > size>>(tileHeight*uint(level)) // guards the arithmetic below
	if end := uint64(t.N*(1<<tileHeight)+int64(t.W)) << (tileHeight * uint(level)); beyond || end > size {
		a.fail(w, r, fmt.Errorf("%w: tile %s reaches beyond the signed tree (size %d)", errNotFound, rest, size))
		return
	}
	var data []byte
	var whole []wholeEntry
	if t.L == -1 {
		var out *scopeError
		data, whole, out, err = a.entryBundle(r, uint64(t.N)*(1<<tileHeight), t.W)
		if out != nil {
			a.refuse(w, r, out)
			return
		}
	} else {
		var hr tlog.HashReader
		if hr, err = a.read.HashReader(r.Context()); err == nil {
			data, err = tlog.ReadTileData(t, hr)
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Hashes, and bound records' headers, concern no tenant; an entry
	// showing a whole event is a read of its tenant's: one record per
	// such tenant, with its entries.
	var parts []part
	byTenant := map[string]int{}
	for _, e := range whole {
		i, ok := byTenant[e.tenant]
		if !ok {
			i, byTenant[e.tenant] = len(parts), len(parts)
			parts = append(parts, part{e.tenant, map[string]any{"resource": "tile", "tile": rest, "count": 0, "first_index": e.idx}})
		}
		p := parts[i].payload
		p["count"], p["last_index"] = p["count"].(int)+1, e.idx
	}
	if len(parts) == 0 {
		parts = []part{{a.cfg.Tenant, map[string]any{"resource": "tile", "tile": rest}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// wholeEntry is an entry of a bundle that shows its event whole.
type wholeEntry struct {
	idx    int64
	tenant string
}

// entryBundle is the records first..first+n-1, each as a big-endian
// 16-bit length and the record's leaf input (§11), and the entries that
// show their event whole (older, unbound records). An entry that would
// show the event of a tenant outside the caller's scope refuses the
// bundle, the refusal naming every such tenant.
func (a *api) entryBundle(r *http.Request, first uint64, n int) ([]byte, []wholeEntry, *scopeError, error) {
	sc := a.scopeOf(r)
	var out []byte
	var whole []wholeEntry
	var refused *scopeError
	count := 0
	err := a.read.Records(r.Context(), first, first+uint64(n), "", func(e *projections.Event) error {
		// The entry is what the leaf hashes: a bound record's header
		// alone (§2.4), an older record whole.
		record := e.Record()
		entry := ledger.LeafInput(record)
		if len(entry) == len(record) {
			if !sc.tenant(e.Tenant) {
				if refused == nil {
					// Named without its index: the refusal is recorded
					// under each tenant concerned.
					refused = &scopeError{what: fmt.Sprintf("an entry: a record (version %d) whose leaf input holds its event, of a tenant", record[0]), scope: sc}
				}
				refused.tenants = append(refused.tenants, e.Tenant)
			}
			whole = append(whole, wholeEntry{int64(e.Index), e.Tenant})
		}
		if len(entry) > 0xffff {
			return fmt.Errorf("record %d is %d bytes, more than an entry bundle's 16-bit length can say", e.Index, len(entry))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(entry)))
		out = append(out, entry...)
		count++
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if refused != nil {
		return nil, nil, refused, nil
	}
	if count != n {
		return nil, nil, nil, fmt.Errorf("%w: records %d..%d are not all projected", errNotFound, first, first+uint64(n)-1)
	}
	return out, whole, nil, nil
}
