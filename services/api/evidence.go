package api

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/ssh"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/projections/evidence"
)

// EvidenceConfig lets the API build evidence bundles.
type EvidenceConfig struct {
	// Dir keeps the bundles, one file per bundle id; a restart finds the
	// finished ones there (builds under way when it stopped are lost, and
	// asked for again).
	Dir string
	// Signer signs the manifests (an Ed25519 SSH key, not the log's
	// checkpoint key); Principal names it in keys/allowed_signers.
	Signer    ssh.Signer
	Principal string
	// LogVKey is the log's checkpoint verifier key, shipped in bundles.
	LogVKey string
	// GrantVKey is the verifier key of the grants this API signs
	// (approvals.vkey): bundles count a grant only when its signature
	// verifies with it (evidence.Config.GrantVKey).
	GrantVKey string
	Generator string
}

// errNoEvidence: the API was started without an evidence key.
var errNoEvidence = errors.New("evidence bundles are not configured: give the api role an evidence key (api.evidence_key), a directory (api.evidence_dir) and the log's verifier key (api.log_vkey)")

// EvidenceRequest is the body of POST /v1/evidence.
type EvidenceRequest struct {
	Tenant    string    `json:"tenant"`
	Framework string    `json:"framework,omitempty"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	// Expectations, if set, replaces the framework's expectations each
	// control is tested against: a file in the form of
	// compliance/data/<framework>/expectations.yaml, as text. The bundle
	// carries it and its manifest its SHA-256.
	Expectations string `json:"expectations,omitempty"`
}

// EvidenceStatus is the answer of POST /v1/evidence and GET /v1/evidence/{id}.
type EvidenceStatus struct {
	ID        string           `json:"id"`
	Status    string           `json:"status"` // queued, building, ready, failed
	Request   *EvidenceRequest `json:"request,omitempty"`
	Done      uint64           `json:"done"`  // records written
	Total     uint64           `json:"total"` // records in the range
	Error     string           `json:"error,omitempty"`
	Bytes     int64            `json:"bytes,omitempty"`
	SHA256    string           `json:"sha256,omitempty"`
	Range     *evidence.Range  `json:"range,omitempty"`
	Events    int              `json:"events,omitempty"`
	Observed  []string         `json:"controls_observed,omitempty"`
	Download  string           `json:"download,omitempty"`
	Requested time.Time        `json:"requested"`
}

// evidenceJobs are the builds this process knows: one runs at a time, the
// others wait their turn.
type evidenceJobs struct {
	mu   sync.Mutex
	jobs map[string]*EvidenceStatus
	one  chan struct{}
	// wake holds, for each build someone follows (GET
	// /v1/evidence/{id}/progress), a channel closed at its next change.
	wake map[string]chan struct{}
}

// watch is a channel closed at the next change of build id.
func (j *evidenceJobs) watch(id string) <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.wake[id]
	if !ok {
		c = make(chan struct{})
		j.wake[id] = c
	}
	return c
}

// notify wakes those following build id; j.mu is held.
func (j *evidenceJobs) notify(id string) {
	if c, ok := j.wake[id]; ok {
		close(c)
		delete(j.wake, id)
	}
}

var bundleID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (a *api) bundlePath(id string) string { return filepath.Join(a.cfg.Evidence.Dir, id+".zip") }

// needsEvidence answers the evidence routes with 503 without an evidence
// key or the projection.
func (a *api) needsEvidence(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Evidence == nil || a.cfg.Evidence.Signer == nil {
			a.fail(w, r, errNoEvidence)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestEvidence starts building a bundle and answers 202 with its id.
func (a *api) requestEvidence(w http.ResponseWriter, r *http.Request) {
	var req EvidenceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 256<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.fail(w, r, fmt.Errorf("%w: body: %v (want {\"tenant\", \"from\", \"to\", \"framework\", \"expectations\"}, times in RFC 3339)", errBadRequest, err))
		return
	}
	if req.Framework == "" {
		req.Framework = compliance.Default
	}
	if err := checkTenant(req.Tenant); err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.checkTenantScope(w, r, req.Tenant) {
		return
	}
	fw, err := compliance.Load(req.Framework)
	if err != nil {
		a.fail(w, r, badParam("framework", "%v", err))
		return
	}
	if req.Expectations != "" {
		if _, err := compliance.ParseExpectations("expectations", []byte(req.Expectations)); err != nil {
			a.fail(w, r, badParam("expectations", "%v", err))
			return
		}
	}
	switch {
	case req.From.IsZero():
		a.fail(w, r, badParam("from", "required: the period's start, RFC 3339"))
		return
	case req.To.IsZero() || !req.From.Before(req.To):
		a.fail(w, r, badParam("to", "required: the period's end, RFC 3339, after from"))
		return
	}
	var idb [16]byte
	rand.Read(idb[:])
	st := &EvidenceStatus{ID: hex.EncodeToString(idb[:]), Status: "queued", Request: &req, Requested: time.Now().UTC()}
	a.jobs.mu.Lock()
	a.jobs.jobs[st.ID] = st
	a.jobs.mu.Unlock()
	actor := actorOf(r.Context())
	go a.buildEvidence(context.WithoutCancel(r.Context()), r, actor, st, fw)
	w.Header().Set("Location", "/v1/evidence/"+st.ID)
	writeJSON(w, http.StatusAccepted, a.snapshot(st))
}

func (a *api) snapshot(st *EvidenceStatus) EvidenceStatus {
	a.jobs.mu.Lock()
	defer a.jobs.mu.Unlock()
	return *st
}

// buildEvidence builds one bundle, then records evidence.exported; a bundle
// whose export cannot be recorded is removed.
func (a *api) buildEvidence(ctx context.Context, r *http.Request, actor events.Actor, st *EvidenceStatus, fw *compliance.Framework) {
	set := func(f func()) { a.jobs.mu.Lock(); f(); a.jobs.notify(st.ID); a.jobs.mu.Unlock() }
	fail := func(err error) {
		a.cfg.Logger.Error("evidence bundle failed", "id", st.ID, "err", err)
		set(func() { st.Status, st.Error = "failed", err.Error() })
	}
	a.jobs.one <- struct{}{}
	defer func() { <-a.jobs.one }()
	set(func() { st.Status = "building" })
	ev := a.cfg.Evidence
	if err := os.MkdirAll(ev.Dir, 0o700); err != nil {
		fail(err)
		return
	}
	tmp, err := os.CreateTemp(ev.Dir, ".building-*.zip")
	if err != nil {
		fail(err)
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	req := st.Request
	m, err := evidence.Build(ctx, evidence.Config{DB: a.cfg.DB, Framework: fw, Tenant: req.Tenant, From: req.From, To: req.To,
		BundleID: st.ID, Signer: ev.Signer, Principal: ev.Principal, LogVKey: ev.LogVKey, GrantVKey: ev.GrantVKey, Generator: ev.Generator,
		RequestedBy: a.requester(ctx, actor, req.Tenant), Expectations: expectationsOf(req),
		Progress: func(done, total uint64) { set(func() { st.Done, st.Total = done, total }) }}, io.MultiWriter(tmp, h))
	if err == nil {
		err = tmp.Sync()
	}
	var info os.FileInfo
	if err == nil {
		info, err = tmp.Stat()
	}
	if err != nil {
		fail(err)
		return
	}
	sum, size := hex.EncodeToString(h.Sum(nil)), info.Size()
	// The export is in the log, under the bundle's tenant, before anyone
	// can download it.
	payload := map[string]any{"bundle_id": st.ID, "tenant": req.Tenant, "framework": fw.Catalog.ID, "mapping_version": fw.Mapping.Version,
		"from": req.From.UTC().Format(time.RFC3339), "to": req.To.UTC().Format(time.RFC3339),
		"first_index": m.Range.First, "end_index": m.Range.End, "events": m.Events, "sha256": sum, "bytes": size, "generator": m.Generator}
	e, err := a.event(r, events.EvidenceExported, a.actorIn(actor, req.Tenant), req.Tenant, payload)
	if err == nil {
		res, _ := a.cfg.Emitter.Emit(ctx, e)
		err = res.Stored(false)
	}
	if err != nil {
		fail(fmt.Errorf("%w: %v", errNotAudited, err))
		return
	}
	if err := os.Rename(tmp.Name(), a.bundlePath(st.ID)); err != nil {
		fail(err)
		return
	}
	set(func() {
		st.Status, st.Bytes, st.SHA256, st.Range, st.Events, st.Observed = "ready", size, sum, &m.Range, m.Events, observedControls(m)
		st.Download = "/v1/evidence/" + st.ID + "/download"
	})
}

// observedControls are the controls a bundle has evidence for.
func observedControls(m *evidence.Manifest) []string {
	var ids []string
	for _, c := range m.Controls {
		if c.Observed {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// evidenceStatus answers a build's state. It says the bundle's tenant,
// period, range and digest: audit data, so the read is recorded first.
func (a *api) evidenceStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.bundle(chi.URLParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.bundleInScope(w, r, st) {
		return
	}
	audit := map[string]any{"resource": "evidence status", "bundle_id": st.ID, "status": st.Status, "tenant": st.Request.Tenant}
	if st.Range != nil {
		audit["first_index"], audit["end_index"] = st.Range.First, st.Range.End
	}
	if st.SHA256 != "" {
		audit["sha256"] = st.SHA256
	}
	if err := a.accessed(r, st.Request.Tenant, audit); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Progress is one message of GET /v1/evidence/{id}/progress: a build's
// state and its records written of the range's total.
type Progress struct {
	Status string `json:"status"`
	Done   uint64 `json:"done"`
	Total  uint64 `json:"total"`
	Error  string `json:"error,omitempty"`
}

// progressEvery is the least time between two progress messages;
// heartbeatEvery the most time without a byte on the stream (a comment
// line, for proxies that close idle connections).
const (
	progressEvery  = 250 * time.Millisecond
	heartbeatEvery = 15 * time.Second
)

// evidenceProgress follows a build as a stream of server-sent events,
// from this process's memory (the build's own counters: no read of the
// projection or the disk per message). The stream is one read: its
// start is authorised and scoped as a status read and recorded as one
// audit.accessed ("evidence progress"), and it carries only the state
// and the counts. Each change is sent as an event "progress" (at most
// one per progressEvery); once the build is ready or has failed, an
// event "end" says so and the stream ends: the bundle's digest, range and
// controls are the status read's (GET /v1/evidence/{id}), recorded
// as ever.
func (a *api) evidenceProgress(w http.ResponseWriter, r *http.Request) {
	st, err := a.bundle(chi.URLParam(r, "id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.bundleInScope(w, r, st) {
		return
	}
	if err := a.accessed(r, st.Request.Tenant, map[string]any{"resource": "evidence progress", "bundle_id": st.ID, "status": st.Status, "tenant": st.Request.Tenant}); err != nil {
		a.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w) // through wrappers (metrics) to the connection
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, p Progress) error {
		b, _ := json.Marshal(p)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		rc.Flush()
		return nil
	}
	heartbeat := time.NewTicker(heartbeatEvery)
	defer heartbeat.Stop()
	var last Progress
	first := true
	for {
		woken := a.jobs.watch(st.ID)
		cur := a.snapshot(a.jobs.job(st.ID, st))
		p := Progress{Status: cur.Status, Done: cur.Done, Total: cur.Total, Error: cur.Error}
		if cur.Status == "ready" || cur.Status == "failed" {
			// No change is coming: wake and drop the watch just made.
			a.jobs.mu.Lock()
			a.jobs.notify(st.ID)
			a.jobs.mu.Unlock()
			send("end", p)
			return
		}
		if first || p != last {
			if send("progress", p) != nil {
				return
			}
			last, first = p, false
		}
		select {
		case <-r.Context().Done():
			return
		case <-heartbeat.C:
			if _, err := io.WriteString(w, ": still building\n\n"); err != nil {
				return
			}
			rc.Flush()
		case <-woken:
			// At most one message per progressEvery.
			select {
			case <-r.Context().Done():
				return
			case <-time.After(progressEvery):
			}
		}
	}
}

// job is the build id as this process holds it (st when it holds none:
// a bundle read from disk is remembered by bundle).
func (j *evidenceJobs) job(id string, st EvidenceStatus) *EvidenceStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	if p, ok := j.jobs[id]; ok {
		return p
	}
	return &st
}

// bundle is what this process knows of a bundle; a finished one from
// before a restart is read from disk once (its whole file hashed), then
// remembered.
func (a *api) bundle(id string) (EvidenceStatus, error) {
	a.jobs.mu.Lock()
	st, ok := a.jobs.jobs[id]
	a.jobs.mu.Unlock()
	if ok {
		return a.snapshot(st), nil
	}
	st, err := a.bundleOnDisk(id)
	if err != nil {
		return EvidenceStatus{}, err
	}
	a.jobs.mu.Lock()
	a.jobs.jobs[id] = st
	a.jobs.mu.Unlock()
	return *st, nil
}

func (a *api) bundleOnDisk(id string) (*EvidenceStatus, error) {
	if !bundleID.MatchString(id) {
		return nil, fmt.Errorf("%w: no evidence bundle %q", errNotFound, id)
	}
	f, err := os.Open(a.bundlePath(id))
	if err != nil {
		return nil, fmt.Errorf("%w: no evidence bundle %s", errNotFound, id)
	}
	defer f.Close()
	info, _ := f.Stat()
	h := sha256.New()
	io.Copy(h, f)
	zr, err := zip.NewReader(f, info.Size())
	if err != nil {
		return nil, err
	}
	var m evidence.Manifest
	mf, err := zr.Open(evidence.ManifestFile)
	if err != nil {
		return nil, err
	}
	defer mf.Close()
	if err := json.NewDecoder(mf).Decode(&m); err != nil {
		return nil, err
	}
	st := &EvidenceStatus{ID: id, Status: "ready", Request: &EvidenceRequest{Tenant: m.Tenant, Framework: m.Framework.ID, From: m.Period.From, To: m.Period.To},
		Done: m.Range.End - m.Range.First, Total: m.Range.End - m.Range.First, Bytes: info.Size(), SHA256: hex.EncodeToString(h.Sum(nil)),
		Range: &m.Range, Events: m.Events, Observed: observedControls(&m), Download: "/v1/evidence/" + id + "/download", Requested: m.Created}
	return st, nil
}

// maxBundleList bounds GET /v1/evidence's answer (limit=).
const maxBundleList = 1000

// listEvidence answers GET /v1/evidence?tenant=&status=&limit=: the
// bundles this process knows (built or building here, and the finished
// ones in its directory, from before a restart too), of the tenants the
// caller may read, newest asked for first. The list names each bundle's
// tenant, period, range and digest: audit data, so it is recorded first,
// one audit.accessed per tenant listed (its bundle ids), as the
// other lists are.
func (a *api) listEvidence(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := knownParams(q, "tenant", "status", "limit"); err != nil {
		a.fail(w, r, err)
		return
	}
	status := q.Get("status")
	switch status {
	case "", "queued", "building", "ready", "failed":
	default:
		a.fail(w, r, badParam("status", "%q: want queued, building, ready or failed", status))
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxBundleList {
			a.fail(w, r, badParam("limit", "%q: want 1 to %d", v, maxBundleList))
			return
		}
		limit = n
	}
	tenants, ok := a.tenantsOf(w, r, q.Get("tenant"))
	if !ok {
		return
	}
	all, err := a.bundles()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := []EvidenceStatus{}
	for _, st := range all {
		if st.Request == nil || tenants != nil && !slices.Contains(tenants, st.Request.Tenant) || status != "" && st.Status != status {
			continue
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(x, y EvidenceStatus) int {
		if c := y.Requested.Compare(x.Requested); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	var parts []part
	byTenant := map[string]int{}
	for _, st := range out {
		i, ok := byTenant[st.Request.Tenant]
		if !ok {
			i, byTenant[st.Request.Tenant] = len(parts), len(parts)
			parts = append(parts, part{st.Request.Tenant, map[string]any{"resource": "evidence bundles", "status_filter": status, "count": 0, "ids": []string{}}})
		}
		p := parts[i].payload
		p["count"], p["ids"] = p["count"].(int)+1, append(p["ids"].([]string), st.ID)
	}
	if len(parts) == 0 {
		parts = []part{{a.readTenant(r, q.Get("tenant")), map[string]any{"resource": "evidence bundles", "status_filter": status, "count": 0, "ids": []string{}}}}
	}
	if err := a.accessedParts(r, parts); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// bundles is every bundle this process knows: those in memory, and the
// finished ones in the directory it has not read yet (each read once,
// its file hashed, then remembered).
func (a *api) bundles() ([]EvidenceStatus, error) {
	entries, err := os.ReadDir(a.cfg.Evidence.Dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the evidence directory: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".zip")
		if !ok || !bundleID.MatchString(id) {
			continue
		}
		a.jobs.mu.Lock()
		_, known := a.jobs.jobs[id]
		a.jobs.mu.Unlock()
		if known {
			continue
		}
		if _, err := a.bundle(id); err != nil {
			// One unreadable file does not hide the others; it is named
			// in the log.
			a.cfg.Logger.Error("evidence bundle on disk unreadable: left out of the list", "id", id, "err", err)
		}
	}
	a.jobs.mu.Lock()
	defer a.jobs.mu.Unlock()
	out := make([]EvidenceStatus, 0, len(a.jobs.jobs))
	for _, st := range a.jobs.jobs {
		out = append(out, *st)
	}
	return out, nil
}

// downloadEvidence sends a finished bundle, after recording the download.
func (a *api) downloadEvidence(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	st, err := a.bundle(id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.bundleInScope(w, r, st) {
		return
	}
	if st.Status != "ready" {
		a.fail(w, r, fmt.Errorf("%w: bundle %s is %s", errNotReady, id, st.Status))
		return
	}
	f, err := os.Open(a.bundlePath(id))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer f.Close()
	if err := a.accessed(r, st.Request.Tenant, map[string]any{"resource": "evidence", "bundle_id": id, "tenant": st.Request.Tenant, "sha256": st.SHA256, "bytes": st.Bytes}); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-%s-%s.zip"`, st.Request.Tenant, id))
	http.ServeContent(w, r, "", st.Requested, f)
}

// bundleInScope refuses a bundle of a tenant the caller may not read,
// whoever asked for it.
func (a *api) bundleInScope(w http.ResponseWriter, r *http.Request, st EvidenceStatus) bool {
	if st.Request == nil {
		a.fail(w, r, fmt.Errorf("bundle %s names no tenant", st.ID))
		return false
	}
	if s := a.scopeOf(r); !s.tenant(st.Request.Tenant) {
		a.refuse(w, r, &scopeError{what: "evidence bundle " + st.ID, scope: s, tenants: []string{st.Request.Tenant}})
		return false
	}
	return true
}

// errNotReady: the bundle is still being built, or failed.
var errNotReady = errors.New("not ready")

// requester is who asked for a bundle as its manifest names them: as the
// ledger records the actor (gateway.RecordedActor) — a subject that is an
// e-mail address by its pseudonym — since a signed bundle, once handed
// out, cannot be erased.
func (a *api) requester(ctx context.Context, actor events.Actor, tenant string) evidence.Requester {
	r := a.sealActor(ctx, actor, tenant)
	return evidence.Requester{Issuer: r.Issuer, Subject: r.Subject}
}

// expectationsOf is the request's expectations file, nil for the
// framework's own.
func expectationsOf(req *EvidenceRequest) []byte {
	if req.Expectations == "" {
		return nil
	}
	return []byte(req.Expectations)
}
