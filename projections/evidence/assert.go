package evidence

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/compliance"
	"github.com/auditledger/auditledger/internal/eventscan"
)

// ExpectationsFile is the expectations the controls were tested against,
// as the bundle was built with them (FORMAT §12.1).
const ExpectationsFile = "expectations.yaml"

// Expectations names the expectations file a bundle was built with.
type Expectations struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Source: "default" (the framework's expectations.yaml of the
	// builder's version) or "operator" (a file the requester gave).
	Source string `json:"source"`
}

// ControlAssertion is a control's expectation tested against the
// bundle's events.
type ControlAssertion struct {
	Check      string `json:"check"`
	Statement  string `json:"statement"`
	Population int    `json:"population"`
	Exceptions int    `json:"exceptions"`
	Result     string `json:"result"`
	File       string `json:"file"`
}

// assertionPath is the CSV of a control's assertion.
func assertionPath(control string) string { return "controls/" + control + "/assertion.csv" }

// assertionCSV is the CSV of an assertion: the header, then one line per
// member of the population, in index order.
func assertionCSV(a *compliance.Assertion) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(compliance.AssertionColumns)
	for _, r := range a.Rows {
		w.Write(r.CSV())
	}
	w.Flush()
	return b.Bytes()
}

// Warnings a report opens with, each derived from the bundle alone.
const (
	WarnDevIdentities = "Every person who acted in the period signed in with a development identity (dev_identity): no production identity provider vouched for who they were."
	WarnNotWriteOnce  = "The store is not write-once: at least one segment of the period is not locked in COMPLIANCE mode (no S3 Object Lock), so the log could have been deleted or replaced."
	// WarnLegacyGrants is the verifier's warning for a bundle whose
	// expectations are of version 1 (built before grants were verified).
	WarnLegacyGrants = "the bundle's expectations are of version 1: privileged-sessions-granted was derived by version 1's rule, which takes any access.granted record naming the session's grant as the grant, whoever published it and signed or not (FORMAT §12.1)"
	// WarnLegacyReviews is the verifier's warning for a bundle whose
	// expectations are of version 1 or 2 and declare audit-reviewed.
	WarnLegacyReviews = "the bundle's expectations are of a version before 3: audit-reviewed was derived by that version's rule, which tests only the time between two reviews, not the time from the period's start to the first review nor from the last review to the period's end (FORMAT §12.1)"
	// WarnLegacyRefusals is the verifier's warning for a bundle whose
	// expectations are of a version before 5 and declare
	// refusals-name-rule.
	WarnLegacyRefusals = "the bundle's expectations are of a version before 5: refusals-name-rule was derived by that version's rule, which tests every command.blocked, the API's refusals and a gateway's refusals no rule decides included, so those show as refused with no rule named (FORMAT §12.1)"
	WarnNoVerification = "No full verification of the log after the period's end: the projection holds no successful verification of at least the range's records (control 5.33)."
	// WarnNotVerified is WarnNoVerification of bundles that carry the
	// writer's verification records (log/verifications.jsonl): derived
	// from them, not from a table of the projection.
	WarnNotVerified = "No full verification of the log recorded after the period's end found it whole over the range's records: the log holds no ledger.verification record of at least the range's size that is ok (control 5.33)."
)

// identityCensus counts the distinct human identities of the tenant's
// events and those marked as development identities.
type identityCensus struct {
	humans, dev map[[2]string]bool
}

func newCensus() *identityCensus {
	return &identityCensus{humans: map[[2]string]bool{}, dev: map[[2]string]bool{}}
}

func (c *identityCensus) note(event []byte) {
	var ev eventscan.Event
	c.noteScanned(event, &ev, ev.Scan(event))
}

// noteScanned is note given the event as eventscan read it.
func (c *identityCensus) noteScanned(event []byte, ev *eventscan.Event, scanned bool) {
	if scanned {
		if string(ev.Bytes(eventscan.ActorKind)) != "human" {
			return
		}
		k := [2]string{string(ev.Bytes(eventscan.ActorIssuer)), string(ev.Bytes(eventscan.ActorSubject))}
		dev := ev.Bool(eventscan.ActorDevIdentity)
		if !c.humans[k] {
			c.humans[k] = true
		}
		if dev && !c.dev[k] {
			c.dev[k] = true
		}
		return
	}
	var e struct {
		Actor struct {
			Issuer      string `json:"issuer"`
			Subject     string `json:"subject"`
			Kind        string `json:"kind"`
			DevIdentity bool   `json:"dev_identity"`
		} `json:"actor"`
	}
	if json.Unmarshal(event, &e) != nil || e.Actor.Kind != "human" {
		return
	}
	k := [2]string{e.Actor.Issuer, e.Actor.Subject}
	c.humans[k] = true
	if e.Actor.DevIdentity {
		c.dev[k] = true
	}
}

// warningsOf derives the report's warnings: the census of identities, the
// segments' locks and whether a full verification covered the range —
// from the verification records (verifs) when the bundle carries them
// (m.Verifications), else from 5.33's queried table.
func warningsOf(m *Manifest, census *identityCensus, segs []Segment, verifs []VerificationSeen) []string {
	var w []string
	if len(census.humans) > 0 && len(census.dev) == len(census.humans) {
		w = append(w, WarnDevIdentities)
	}
	for _, s := range segs {
		if s.LockMode != "COMPLIANCE" {
			w = append(w, WarnNotWriteOnce)
			break
		}
	}
	if m.Verifications != nil {
		if !slices.ContainsFunc(verifs, func(v VerificationSeen) bool { return v.OK && v.Size >= m.Range.End }) {
			w = append(w, WarnNotVerified)
		}
		return w
	}
	for _, c := range m.Controls {
		if c.ID == "5.33" {
			if n, ok := c.Counts["verification"]; ok && n == 0 {
				w = append(w, WarnNoVerification)
			}
		}
	}
	return w
}

// summaryOf is a control's summary.md: what the ledger observes, the
// assertion and its result, and the rows of each query.
func summaryOf(m *Manifest, fw *compliance.Framework, c *Control) []byte {
	ev, _ := fw.Evidence(c.ID)
	var s strings.Builder
	fmt.Fprintf(&s, "# %s %s\n\n", c.ID, c.Title)
	fmt.Fprintf(&s, "Tenant %s, %s to %s (ledger indexes %d to %d).\n\n", m.Tenant, m.Period.From.Format(time.RFC3339), m.Period.To.Format(time.RFC3339), m.Range.First, m.Range.End)
	if a := c.Assertion; a != nil {
		fmt.Fprintf(&s, "**Result: %s.**\n\n", a.Result)
		fmt.Fprintf(&s, "Tested: %s (check `%s` of `%s`).\n\n", a.Statement, a.Check, ExpectationsFile)
		switch a.Result {
		case compliance.NotObserved:
			s.WriteString("Population: none - nothing the test covers happened in the period, so the control was not observed working or failing.\n\n")
		default:
			fmt.Fprintf(&s, "Population: %d, every one tested (`assertion.csv`). Exceptions: %d", a.Population, a.Exceptions)
			if a.Exceptions > 0 {
				s.WriteString(" - the rows of `assertion.csv` whose `exception` is not empty")
			}
			s.WriteString(".\n\n")
		}
	} else {
		s.WriteString("**Result: " + c.Result() + "** - no expectation is declared for this control, so what follows is what happened, not whether it was allowed.\n\n")
	}
	fmt.Fprintf(&s, "What the ledger observes for this control: %s\n\n", ev.Observes)
	if from := fw.MappedFrom(c.ID); len(from) > 0 {
		fmt.Fprintf(&s, "Also maps from: %s.\n\n", strings.Join(from, "; "))
	}
	if !c.Observed {
		s.WriteString("**No evidence was observed in the period**: every query below returned no rows.\n\n")
	}
	for _, q := range ev.Queries {
		fmt.Fprintf(&s, "- %s: %d rows in `%s.csv`", q.Summary, c.Counts[q.Name], q.Name)
		for _, name := range c.Capped {
			if name == q.Name {
				fmt.Fprintf(&s, " (the first %d)", c.Counts[q.Name])
			}
		}
		if slices.Contains(c.Derived, q.Name) {
			fmt.Fprintf(&s, "; derived from the bundle's records as FORMAT §12.3 defines `%s/%s`: the verifier re-derives it\n", c.ID, q.Name)
			continue
		}
		fmt.Fprintf(&s, "; the query is `%s.sql` ($1 = tenant, $2 = %d, $3 = %d), run on the projection: these rows are vouched for by the evidence key, not re-derived by the verifier\n", q.Name, m.Range.First, m.Range.End)
	}
	return []byte(s.String())
}

// derivedFiles are the files a verifier re-derives from the bundle's own
// events, expectations, segments and manifest: each control's
// assertion.csv and summary.md, the OSCAL results and the report.
func derivedFiles(m *Manifest, fw *compliance.Framework, asserts []compliance.Assertion) (map[string][]byte, error) {
	out := map[string][]byte{}
	byControl := map[string]*compliance.Assertion{}
	for i := range asserts {
		a := &asserts[i]
		byControl[a.Control] = a
		out[assertionPath(a.Control)] = assertionCSV(a)
	}
	for i := range m.Controls {
		c := &m.Controls[i]
		out["controls/"+c.ID+"/summary.md"] = summaryOf(m, fw, c)
	}
	var b bytes.Buffer
	if err := writeOSCAL(&b, m, fw, byControl); err != nil {
		return nil, err
	}
	out[OSCALFile] = bytes.Clone(b.Bytes())
	b.Reset()
	if err := writeReport(&b, m, fw, byControl); err != nil {
		return nil, err
	}
	out[ReportFile] = bytes.Clone(b.Bytes())
	return out, nil
}

// assertedPeriod is the time a bundle's assertions cover (FORMAT §12.1):
// the period, from the log's first record when the log began in it (the
// range starts at index 0, sealed after period.from: there was nothing
// to review before), to the bundle's creation when it was built before
// the period's end (what came after had yet to be reviewed) — but never
// before the range's last record was sealed, which check 7 proves: a
// manifest's created, vouched for by the evidence key alone, cannot end
// the period before the records it holds.
func assertedPeriod(m *Manifest) compliance.Period {
	p := compliance.Period{From: m.Period.From, To: m.Period.To, First: m.Range.First, End: m.Range.End}
	if m.Range.First == 0 && m.Range.FirstSealed != nil && m.Range.FirstSealed.After(p.From) {
		p.From = *m.Range.FirstSealed
	}
	built := m.Created
	if m.Range.LastSealed != nil && m.Range.LastSealed.After(built) {
		built = *m.Range.LastSealed
	}
	if built.Before(p.To) {
		p.To = built
	}
	return p
}

// controlAssertion is the manifest's account of an assertion.
func controlAssertion(a *compliance.Assertion) *ControlAssertion {
	return &ControlAssertion{Check: a.Check, Statement: a.Statement, Population: len(a.Rows), Exceptions: a.Exceptions, Result: a.Result, File: assertionPath(a.Control)}
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// derivation collects, while the records are verified, what check 11
// re-derives the derived files from.
type derivation struct {
	scan     eventscan.Event // the event being read
	census   *identityCensus
	asserter *compliance.Asserter // nil: the bundle has no expectations
	// legacy: the expectations are of version 1 and test
	// privileged-sessions-granted by its rule; legacyReviews: they are of
	// version 1 or 2 and test audit-reviewed by its rule
	legacy, legacyReviews bool
	// legacyRefusals: they are of a version before 5 and derive
	// refusals-name-rule over every command.blocked
	legacyRefusals bool
	tables         *tableSet // the tables the manifest says are derived
	// verifs are the verification records of log/verifications.jsonl
	verifs []VerificationSeen
	// err is the first event the checks could not read
	err error
}

// newDerivation reads the bundle's expectations, so that the checks read
// the events as they are verified: the file must have the manifest's
// SHA-256 and parse (check 11's first step).
func newDerivation(files map[string]*zip.File, m *Manifest, grants compliance.GrantKey) (*derivation, error) {
	d := &derivation{census: newCensus()}
	var want []string
	for _, c := range m.Controls {
		for _, name := range c.Derived {
			want = append(want, c.ID+"/"+name)
		}
	}
	var err error
	if d.tables, err = newTables(want); err != nil {
		return nil, failf(ManifestFile, "%v", err)
	}
	if m.Expectations == nil {
		return d, nil
	}
	if m.Expectations.Path != ExpectationsFile {
		return nil, failf(ManifestFile, "expectations.path %q, want %q", m.Expectations.Path, ExpectationsFile)
	}
	xb, err := readZip(files, ExpectationsFile, 1<<20)
	if err != nil {
		return nil, err
	}
	if sha256Hex(xb) != m.Expectations.SHA256 {
		return nil, failf(ExpectationsFile, "SHA-256 %s, the manifest's expectations.sha256 is %s", sha256Hex(xb), m.Expectations.SHA256)
	}
	x, err := compliance.ParseExpectations(ExpectationsFile, xb)
	if err != nil {
		return nil, failf(ExpectationsFile, "%v", err)
	}
	d.asserter, d.legacy, d.legacyReviews, d.legacyRefusals = compliance.NewAsserter(x, grants), x.Legacy(), x.LegacyReviews(), x.LegacyRefusals()
	return d, nil
}

func (d *derivation) note(idx uint64, at time.Time, event []byte, system bool) {
	d.noteScanned(idx, at, event, &d.scan, d.scan.Scan(event), system)
}

// noteScanned is note given the event as eventscan read it (scanned
// false: encoding/json decodes it), read once for every check.
func (d *derivation) noteScanned(idx uint64, at time.Time, event []byte, ev *eventscan.Event, scanned, system bool) {
	d.census.noteScanned(event, ev, scanned)
	d.tables.noteScanned(idx, at, event, ev, scanned, system)
	if d.asserter != nil && d.err == nil {
		if scanned {
			d.err = d.asserter.AddScanned(idx, event, ev)
		} else {
			d.err = d.asserter.Add(idx, event)
		}
	}
}

// checkTables is check 11's first part: every table the manifest says is
// derived is byte for byte the one derived from the records (and its row
// count and cap the manifest's); when this verifier holds the bundle's
// mapping, the tables derived are exactly those it marks derived. The
// other tables are named in a warning: they rest on the evidence key.
func (d *derivation) checkTables(files map[string]*zip.File, rep *Report) error {
	m := rep.Manifest
	if d.tables.err != nil {
		return failf(EventsFile, "%v", d.tables.err)
	}
	fw, err := compliance.Load(m.Framework.ID)
	haveMapping := err == nil && fw.Catalog.Version == m.Framework.Version && fw.Mapping.Version == m.Framework.MappingVersion
	var vouched []string
	for _, c := range m.Controls {
		for _, name := range c.Derived {
			path := "controls/" + c.ID + "/" + name + ".csv"
			want, n, capped := d.tables.csv(c.ID+"/"+name, &tableIn{segs: rep.Segments, erased: erasedSet(m.SealedFields), verifs: d.verifs, first: m.Range.First, end: m.Range.End})
			got, err := readZip(files, path, 256<<20)
			if err != nil {
				return err
			}
			if err := sameBytes(path, got, want, "re-derived from the records (FORMAT §12.3)"); err != nil {
				return err
			}
			if c.Counts[name] != n || slices.Contains(c.Capped, name) != capped {
				return failf(ManifestFile, "control %s: table %s has %d rows (capped %t), the manifest says %d (capped %t)", c.ID, name, n, capped, c.Counts[name], slices.Contains(c.Capped, name))
			}
			rep.Tables++
		}
		for name := range c.Counts {
			if !slices.Contains(c.Derived, name) {
				vouched = append(vouched, "controls/"+c.ID+"/"+name+".csv")
			}
		}
		if !haveMapping {
			continue
		}
		ev, _ := fw.Evidence(c.ID)
		var marked []string
		for _, q := range ev.Queries {
			if q.Derived {
				marked = append(marked, q.Name)
			}
		}
		if !slices.Equal(c.Derived, marked) {
			return failf(ManifestFile, "control %s: derived tables %q, the mapping (v%d) derives %q: a table was passed off as queried", c.ID, c.Derived, m.Framework.MappingVersion, marked)
		}
	}
	slices.Sort(vouched)
	rep.Vouched = vouched
	return nil
}

// check is check 11: each control's assertion, as the manifest gives it
// and as assertion.csv lists it, is the one the expectations give over
// the bundle's events; the warnings are those the bundle gives; and, when
// this verifier holds the framework data the bundle was built with, every
// summary.md, the OSCAL results and index.html are byte for byte the ones
// derived from the manifest and the assertions. A failure names the file
// and the first line that differs.
func (d *derivation) check(files map[string]*zip.File, rep *Report) error {
	m := rep.Manifest
	if err := d.checkTables(files, rep); err != nil {
		return err
	}
	if d.asserter == nil {
		rep.Warnings = append(rep.Warnings, "the bundle carries no expectations (built before assertions): its control tables are not re-derived")
		return nil
	}
	if d.err != nil {
		return failf(EventsFile, "%v", d.err)
	}
	asserts := d.asserter.Assertions(assertedPeriod(m))
	if idx, needed := d.asserter.GrantKeyNeeded(); needed {
		return failAt(EventsFile, idx, "this access.granted claims to grant a privileged session, and its signature can be checked only with the grant key: give the one the operator published (--grant-vkey, the API's approvals.vkey); --trust-bundle-keys takes the bundle's keys/grant.vkey, of unverified origin")
	}
	if d.legacy {
		rep.Warnings = append(rep.Warnings, WarnLegacyGrants)
	}
	if d.legacyReviews {
		rep.Warnings = append(rep.Warnings, WarnLegacyReviews)
	}
	if d.legacyRefusals {
		rep.Warnings = append(rep.Warnings, WarnLegacyRefusals)
	}
	byControl := map[string]*compliance.Assertion{}
	for i := range asserts {
		a := &asserts[i]
		byControl[a.Control] = a
		got, err := readZip(files, assertionPath(a.Control), 256<<20)
		if err != nil {
			return err
		}
		if err := sameBytes(assertionPath(a.Control), got, assertionCSV(a), "re-derived from events.jsonl and "+ExpectationsFile); err != nil {
			return err
		}
	}
	for _, c := range m.Controls {
		a := byControl[c.ID]
		switch {
		case a == nil && c.Assertion != nil:
			return failf(ManifestFile, "control %s has an assertion, but %s declares no expectation for it", c.ID, ExpectationsFile)
		case a != nil && c.Assertion == nil:
			return failf(ManifestFile, "control %s has no assertion, but %s declares one", c.ID, ExpectationsFile)
		case a != nil && *c.Assertion != *controlAssertion(a):
			return failf(ManifestFile, "control %s: assertion %+v, the events give %+v", c.ID, *c.Assertion, *controlAssertion(a))
		}
		delete(byControl, c.ID)
	}
	for id := range byControl {
		return failf(ManifestFile, "%s declares an expectation for control %s, which the manifest does not list", ExpectationsFile, id)
	}
	if want := warningsOf(m, d.census, rep.Segments, d.verifs); !slices.Equal(m.Warnings, want) {
		return failf(ManifestFile, "warnings %q, the bundle gives %q", m.Warnings, want)
	}
	fw, err := compliance.Load(m.Framework.ID)
	if err != nil || fw.Catalog.Version != m.Framework.Version || fw.Mapping.Version != m.Framework.MappingVersion {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("this verifier does not hold the framework data the bundle was built with (%s %s, mapping v%d): the summaries, the OSCAL results and index.html were not re-derived (the assertions were)", m.Framework.ID, m.Framework.Version, m.Framework.MappingVersion))
		return nil
	}
	derived, err := derivedFiles(m, fw, asserts)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(derived))
	for name := range derived {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		got, err := readZip(files, name, 256<<20)
		if err != nil {
			return err
		}
		if err := sameBytes(name, got, derived[name], "derived from the manifest and the assertions"); err != nil {
			return err
		}
	}
	rep.Rederived = len(asserts)
	return nil
}

// sameBytes fails naming the first line of got that is not want's.
func sameBytes(name string, got, want []byte, how string) error {
	if bytes.Equal(got, want) {
		return nil
	}
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		gl, wl := "(nothing)", "(nothing)"
		if i < len(g) {
			gl = fmt.Sprintf("%.200q", g[i])
		}
		if i < len(w) {
			wl = fmt.Sprintf("%.200q", w[i])
		}
		if gl != wl {
			return failf(name, "line %d is %s, %s it is %s: a row was added, removed or changed", i+1, gl, how, wl)
		}
	}
	return failf(name, "differs from the file %s", how)
}

// readZip reads one file of the bundle, at most max bytes.
func readZip(files map[string]*zip.File, name string, max int64) ([]byte, error) {
	f := files[name]
	if f == nil {
		return nil, failf(name, "missing from the bundle")
	}
	rc, err := f.Open()
	if err != nil {
		return nil, failf(name, "%v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, failf(name, "%v", err)
	}
	if int64(len(b)) > max {
		return nil, failf(name, "larger than %d bytes", max)
	}
	return b, nil
}
