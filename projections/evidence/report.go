package evidence

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// The report: one self-contained page, no external assets, for a reader
// who is not an engineer: warnings, then the exceptions, then each control
// in plain words, then the details.
var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Evidence: {{.M.Tenant}}, {{.Title}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.none{color:#8a4b00}.ok{color:#0a5d00}.bad{color:#a00000}code{background:#f3f3f3;padding:0 .2em}
.warn{border:2px solid #a00000;padding:.5em 1em;background:#fff4f4}
</style></head><body>
<h1>Evidence for {{.M.Tenant}}: {{.Title}}</h1>
<p>This file reports what the audit ledger recorded for tenant {{.M.Tenant}} from {{time .M.Period.From}} to {{time .M.Period.To}}, and tests it against the expectations declared for each control. Exceptions come first: each is one recorded event, or a time of the period without a review of the audit data, that breaks an expectation.</p>
{{if .M.Warnings}}<div class="warn"><h2>Before you rely on this</h2><ul>{{range .M.Warnings}}<li>{{.}}</li>{{end}}</ul></div>{{end}}
<h2>Exceptions ({{.ExceptionCount}})</h2>
{{if .Exceptions}}<table><tr><th>Control</th><th>What happened</th><th>Who (as recorded)</th><th>Session</th><th>Event</th><th>Why it is an exception</th></tr>
{{range .Exceptions}}<tr><td>{{.Control}}</td><td>{{.Item}}</td><td>{{.Actor}}</td><td>{{.SessionID}}</td><td>{{if .NoEvent}}the period's end{{else}}{{.Type}} at ledger index {{.Index}}{{end}}</td><td class="bad">{{.Exception}}</td></tr>
{{end}}</table>{{if .More}}<p>{{.More}} more: see each control's <code>assertion.csv</code>.</p>{{end}}{{else}}<p class="ok">No exception was found in the period.</p>{{end}}
<h2>Controls</h2>
<table><tr><th>Control</th><th>What was tested</th><th>Result</th><th>How many</th></tr>
{{range .Rows}}<tr><td>{{.ID}} {{.Title}}</td><td>{{if .Assertion}}{{.Assertion.Statement}}{{else}}Nothing is tested for this control: below is only what the ledger recorded ({{.Observes}}){{end}}</td>
<td{{if .Assertion}}{{if eq .Assertion.Exceptions 0}}{{if .Assertion.Population}} class="ok"{{else}} class="none"{{end}}{{else}} class="bad"{{end}}{{end}}>{{.Result}}</td>
<td>{{if .Assertion}}{{.Assertion.Population}} tested, {{.Assertion.Exceptions}} exceptions{{else}}{{.Counts}}{{end}}</td></tr>
{{end}}</table>
<h2>Details</h2>
<table>
<tr><th>Tenant</th><td>{{.M.Tenant}}</td></tr>
<tr><th>Framework</th><td>{{.Title}} ({{.M.Framework.ID}}, mapping v{{.M.Framework.MappingVersion}})</td></tr>
<tr><th>Period</th><td>{{time .M.Period.From}} to {{time .M.Period.To}}{{if .M.Range.Open}} (the log was not yet sealed past its end when this was built){{end}}</td></tr>
<tr><th>Ledger indexes</th><td>{{.M.Range.First}} to {{.M.Range.End}} (the end excluded), proven against the signed checkpoints in <code>log/</code></td></tr>
<tr><th>The tenant's events</th><td>{{.M.Events}}, in <code>events.jsonl</code></td></tr>
{{with .M.Expectations}}<tr><th>Expectations</th><td><code>{{.Path}}</code> ({{.Source}}), SHA-256 <code>{{.SHA256}}</code></td></tr>{{end}}
{{with .M.SealedFields}}<tr><th>Sealed fields</th><td>{{.Count}} (the actor's e-mail, sealed under the person's key: shown as <code>(sealed)</code>, never opened in this bundle){{if .Erased}}; <strong>{{len .Erased}} erased</strong>: the person was erased and no key opens them (indexes{{range .Erased}} {{.Index}}{{end}}){{end}}; erasures looked for up to ledger size {{.ErasuresAsOf}}</td></tr>{{end}}
<tr><th>Log</th><td>{{.M.Log.Origin}}; verifier key <code>{{.M.Log.VKey}}</code></td></tr>
<tr><th>Bundle</th><td>{{.M.BundleID}}, built {{time .M.Created}} by {{.M.Generator}}{{with .M.RequestedBy}}, asked for by {{.Subject}}{{end}}</td></tr>
</table>
<p>Check it before relying on it: <code>auditledger evidence verify</code> on this file (it also re-derives every exception and result above from the events), or by hand as <code>VERIFY.md</code> explains.</p>
<table><tr><th>Control</th><th>Result</th><th>What the ledger observes</th><th>Rows</th><th>Files</th></tr>
{{range .Rows}}<tr><td>{{.ID}} {{.Title}}</td><td>{{.Result}}</td><td>{{if .Observed}}{{.Observes}}{{else}}<span class="none">No evidence was observed in the period.</span>{{end}}</td>
<td>{{.Counts}}</td><td>{{range .Files}}<a href="{{.}}">{{.}}</a><br>{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// reportExceptions is the most exceptions the report lists; the rest are
// in the controls' assertion.csv.
const reportExceptions = 200

func writeReport(w io.Writer, m *Manifest, fw *compliance.Framework, asserts map[string]*compliance.Assertion) error {
	type row struct {
		Control
		Result   string
		Observes string
		Counts   string
	}
	type exception struct {
		compliance.Row
		Control string
	}
	var rows []row
	var exceptions []exception
	total := 0
	for _, c := range m.Controls {
		ev, _ := fw.Evidence(c.ID)
		var counts []string
		for _, q := range ev.Queries {
			counts = append(counts, fmt.Sprintf("%s %d", q.Name, c.Counts[q.Name]))
		}
		rows = append(rows, row{c, c.Result(), ev.Observes, strings.Join(counts, ", ")})
		if a := asserts[c.ID]; a != nil {
			for _, r := range a.Rows {
				if r.Exception == "" {
					continue
				}
				total++
				if len(exceptions) < reportExceptions {
					exceptions = append(exceptions, exception{r, c.ID + " " + c.Title})
				}
			}
		}
	}
	return reportTemplate.Execute(w, map[string]any{"M": m, "Title": fw.Catalog.Title, "Rows": rows,
		"Exceptions": exceptions, "ExceptionCount": total, "More": total - len(exceptions)})
}

// verifyGuide is VERIFY.md: each check a person can make by hand.
func verifyGuide(m *Manifest) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, `# Checking this evidence bundle

Bundle %s: tenant %s, %s to %s, ledger indexes %d to %d (the end
excluded). Every check below works offline. `+"`auditledger evidence verify FILE --vkey LOG.vkey --allowed-signers FILE [--grant-vkey APPROVALS.vkey]`"+`
makes all of them and names the first that fails; here is what it checks,
and how to make the first two with stock tools.

Get the two public keys from the operator by another channel than this
bundle: the log's verifier key, and the evidence signer key as an
ssh-keygen `+"`allowed_signers`"+` file; and, when the bundle carries
`+"`keys/grant.vkey`"+`, the grant key (the API's `+"`approvals.vkey`"+`, which
access grants are signed with). The copies in `+"`keys/`"+` only say which keys
the builder used; anyone who changed the bundle could have changed them.

1. **Every file is the one the operator's exporter wrote, and nothing
   was added or removed** (checks 1 and 2). `+"`SHA256SUMS`"+` lists the SHA-256 of every
   file of the zip but itself and `+"`SHA256SUMS.sig`"+` (the manifest and its
   signature included), and `+"`SHA256SUMS.sig`"+` is its SSH signature by the
   evidence key. With OpenSSH's ssh-keygen, GNU sha256sum and unzip, in a
   new empty directory, `+"`BUNDLE`"+` set to this zip file and `+"`SIGNERS`"+` to the
   operator's `+"`allowed_signers`"+` file (not `+"`keys/allowed_signers`"+`), run:

`+"```sh"+`
unzip -q -o "$BUNDLE"
ssh-keygen -Y verify -f "$SIGNERS" -I '%s' -n %s -s SHA256SUMS.sig < SHA256SUMS
sha256sum --strict -c SHA256SUMS
! { sed 's/^[0-9a-f]\{64\}  //' SHA256SUMS; printf '%%s\n' SHA256SUMS SHA256SUMS.sig; unzip -Z1 "$BUNDLE"; } | LC_ALL=C sort | uniq -c | grep -v '^ *2 '
`+"```"+`

   Each must succeed: ssh-keygen prints `+"`Good \"%s\" signature`"+`, so
   SHA256SUMS is the exporter's, signed with the operator's key; sha256sum
   prints `+"`OK`"+` for every file, so none was changed or removed; the last
   prints nothing, so every name of the zip is listed once and no file was
   added (a name it prints, with its count, was added or is in the zip
   twice; unzip -o keeps the last of two same-named entries, so no prompt
   stops the run). `+"`manifest.json.sig`"+` signs `+"`manifest.json`"+` with the same key (what
   auditledger checks); the manifest lists the same hashes.

3. **The checkpoints are the log's**: `+"`log/checkpoint-start`"+` (tree size %d%s)
   and `+"`log/checkpoint-end`"+` (size %d) are C2SP signed notes; their
   signature checks with the log's verifier key `+"`keys/log.vkey`"+` (any
   C2SP note verifier, e.g. golang.org/x/mod/sumdb/note).

4. **The log did not change between them**: `+"`log/consistency.txt`"+` is an
   RFC 9162 consistency proof from the start checkpoint's tree to the end
   checkpoint's.

5. **The records are the log's, and the tenant's are all there**:
   `+"`log/records.bin`"+` holds every record from index %d to %d, each as a
   4-byte big-endian length and the record (docs/FORMAT.md §2.4): this
   tenant's whole, every other tenant's redacted to the part its leaf hash
   covers (but the default retention's records, whole). `+"`log/prefix.txt`"+` holds the hashes of the tree before index %d.
   Starting from them and appending each record's leaf hash gives the
   start and the end checkpoint's roots. A record whose tenant hash is
   SHA-256("auditledger tenant" 0x00 "%s") is this tenant's and must be
   whole; every other must be another tenant's. So no event of the tenant
   in the range can be missing, and none of another tenant's is shown.

6. **The events are those records**: each line of `+"`events.jsonl`"+` is one of
   the tenant's records, in order, with its index, leaf hash and the event
   exactly as sealed (its SHA-256 is the digest in the record).

7. **The records were kept write-once**: `+"`log/segments.json`"+` lists the
   segments holding the range, with the object version, Object Lock mode
   and retain-until date the store reported; each should be locked in
   COMPLIANCE mode until after your retention requirement. The tenant's
   retention is in the log: its `+"`ledger.retention.changed`"+` records
   and the default's, those before the range in `+"`log/retention.jsonl`"+`
   (each with its inclusion proof at the start checkpoint), those in it
   in `+"`log/records.bin`"+`. Each segment holding the tenant's records
   must be locked until its sealing time plus the tenant's retention in
   force then (its own, else the default's, as the last of those records
   sealed before the segment's end sets it).

8. **Legal holds**: `+"`log/legal-holds.jsonl`"+` holds every
   `+"`legal_hold.set`"+` and `+"`legal_hold.released`"+` record whose range meets
   the bundle's, sealed before `+"`log/checkpoint-latest`"+` (the newest
   checkpoint when the bundle was built, so a hold set after the period is
   there), each with its inclusion proof in it; `+"`log/consistency-latest.txt`"+`
   proves that checkpoint extends the end checkpoint. In index order, the
   last record whose range meets a segment says whether it is held, as
   `+"`legal_hold`"+` in `+"`log/segments.json`"+` must. When the bundle was built
   with the store, each held segment and the checkpoint signed at its end
   must be reported under legal hold (`+"`store_legal_hold`"+`,
   `+"`checkpoint.legal_hold`"+`), each checkpoint locked as its segment is.
   `+"`log/verifications.jsonl`"+` holds the full verifications of the log the
   writer recorded after the range (`+"`ledger.verification`"+` records, each
   whole with its inclusion proof in `+"`log/checkpoint-latest`"+`): 5.33 and
   8.15 are derived from them, and a record the writer did not seal fails.

9. **The assertions follow from the events**: each control with an
   expectation in `+"`expectations.yaml`"+` (its SHA-256 is the manifest's
   `+"`expectations.sha256`"+`) has `+"`controls/<id>/assertion.csv`"+`: every event of
   `+"`events.jsonl`"+` the expectation covers (the population), each with the
   exception it makes or none, and the manifest's `+"`assertion`"+` gives the
   population, the number of exceptions and the result (`+"`effective`"+`,
   `+"`exceptions found`"+`, `+"`not observed`"+`). docs/FORMAT.md §12.1 defines each
   check exactly, so you can re-derive them from `+"`events.jsonl`"+` alone
   (and the operator's grant key: under `+"`privileged-sessions-granted`"+` a
   grant counts only when the API published it and its signed note
   verifies with that key over the grant text rebuilt from the record);
   auditledger does, and also re-renders every `+"`summary.md`"+`, the OSCAL
   results and `+"`index.html`"+` and compares them byte for byte. A row added to
   or removed from an `+"`assertion.csv`"+` fails even when the files are
   re-signed. `+"`auditledger evidence sample FILE --control ID --seed N --size K`"+`
   draws a reproducible sample of a population (§12.2), each item with its
   record's inclusion proof in `+"`log/checkpoint-end`"+`.

The other CSV files under `+"`controls/`"+` describe what the ledger
observed. Those the manifest lists under a control's `+"`derived`"+` are
computed from the records as docs/FORMAT.md §12.3 defines each, so you
can re-derive them from `+"`events.jsonl`"+`, `+"`context/clock.json`"+`,
`+"`context/verifications.json`"+` and `+"`log/segments.json`"+` alone; auditledger does, byte for byte, and fails on
any difference. The rest come with the query that produced them over the
ledger's projection (`+"`.sql`"+`: `+"`$1`"+` = tenant, `+"`$2`"+`, `+"`$3`"+` = the index
range) and are vouched for by the evidence key only (their queries run
on the operator's database). `+"`oscal/assessment-results.json`"+`
carries the findings for GRC tools (OSCAL %s).
`, m.BundleID, m.Tenant, m.Period.From.Format(time.RFC3339), m.Period.To.Format(time.RFC3339), m.Range.First, m.Range.End,
		principalOf(m), Namespace, Namespace, m.Range.First, startNote(m), m.Range.End, m.Range.First, m.Range.End, m.Range.First, m.Tenant, OSCALVersion)
	return []byte(s.String())
}

func startNote(m *Manifest) string {
	if m.Range.First == 0 {
		return ": absent, the range starts at the empty tree"
	}
	return ""
}

// principalOf is the principal keys/allowed_signers names.
func principalOf(m *Manifest) string { return m.Signer }
