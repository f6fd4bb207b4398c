package evidence

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/auditledger/auditledger/compliance"
)

// OSCALVersion is the OSCAL version of the assessment results a bundle
// carries (NIST's schema for it is in compliance/testdata/oscal).
const OSCALVersion = "1.0.6"

// oscalControlID is a control's id in OSCAL, whose tokens must begin with
// a letter: Annex A control 8.11 is "a.8.11".
func oscalControlID(id string) string { return "a." + id }

// uuidFor is a version-5-style UUID derived from the bundle and a name, so
// that the same bundle always names its parts the same.
func uuidFor(bundle, name string) string {
	h := sha256.Sum256([]byte(bundle + "\x00" + name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// writeOSCAL writes the bundle's OSCAL assessment results: one result for
// the period, reviewing the mapped controls, with one observation per
// control pointing at its folder. It states what was observed; whether a
// control is satisfied is the auditor's finding, not ours.
func writeOSCAL(w io.Writer, m *Manifest, fw *compliance.Framework) error {
	type link = map[string]any
	var include []link
	var observations []link
	for _, c := range m.Controls {
		include = append(include, link{"control-id": oscalControlID(c.ID)})
		ev, _ := fw.Evidence(c.ID)
		var counts []string
		for _, q := range ev.Queries {
			counts = append(counts, fmt.Sprintf("%s: %d rows", q.Name, c.Counts[q.Name]))
		}
		desc := fmt.Sprintf("%s %s. Observed by the ledger: %s Rows: %s.", c.ID, c.Title, ev.Observes, strings.Join(counts, ", "))
		if !c.Observed {
			desc = fmt.Sprintf("%s %s. No evidence was observed in the period (%s).", c.ID, c.Title, strings.Join(counts, ", "))
		}
		observations = append(observations, link{
			"uuid":        uuidFor(m.BundleID, "observation/"+c.ID),
			"title":       fmt.Sprintf("%s %s", c.ID, c.Title),
			"description": desc,
			"methods":     []string{"EXAMINE"},
			"types":       []string{"control-objective"},
			"props":       []link{{"name": "label", "value": oscalControlID(c.ID)}},
			"relevant-evidence": []link{{
				"href":        "controls/" + c.ID + "/summary.md",
				"description": "The control's rows from the sealed ledger, the queries that produced them, and their counts, in this bundle",
			}},
			"collected": m.Created.Format(time.RFC3339),
		})
	}
	start := m.Period.From
	if m.Range.FirstSealed != nil && m.Range.FirstSealed.Before(start) {
		start = *m.Range.FirstSealed
	}
	doc := link{"assessment-results": link{
		"uuid": uuidFor(m.BundleID, "assessment-results"),
		"metadata": link{
			"title":         fmt.Sprintf("Evidence from the audit ledger: tenant %s, %s, %s to %s", m.Tenant, fw.Catalog.Title, m.Period.From.Format(time.RFC3339), m.Period.To.Format(time.RFC3339)),
			"last-modified": m.Created.Format(time.RFC3339),
			"version":       m.BundleID,
			"oscal-version": OSCALVersion,
			"props":         []link{{"name": "marking", "value": "bundle " + m.BundleID}},
		},
		"import-ap": link{"href": "#", "remarks": "No assessment plan: these results carry what the ledger observed, for the assessor's own plan."},
		"results": []link{{
			"uuid":        uuidFor(m.BundleID, "result"),
			"title":       fmt.Sprintf("%s, tenant %s", fw.Catalog.Title, m.Tenant),
			"description": fmt.Sprintf("Ledger indexes %d to %d, proven against the signed checkpoints in log/ of this bundle (%s, mapping v%d).", m.Range.First, m.Range.End, fw.Catalog.ID, fw.Mapping.Version),
			"start":       start.Format(time.RFC3339),
			"end":         m.Period.To.Format(time.RFC3339),
			"reviewed-controls": link{"control-selections": []link{{
				"description":      "The controls the evidence mapping draws evidence for",
				"include-controls": include,
			}}},
			"observations": observations,
		}},
	}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
