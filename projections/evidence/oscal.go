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

// frameworkLinks are where each framework of compliance/data is
// published: the back-matter's resource links.
var frameworkLinks = map[string]string{
	"iso27001-2022": "https://www.iso.org/standard/27001",
	"iso27001-2013": "https://www.iso.org/standard/54534.html",
	"nist-800-53r5": "https://raw.githubusercontent.com/usnistgov/oscal-content/main/nist.gov/SP800-53/rev5/json/NIST_SP-800-53_rev5_catalog.json",
	"soc2-2017":     "https://www.aicpa-cima.com/resources/download/2017-trust-services-criteria-with-revised-points-of-focus-2022",
}

// OSCALNamespace qualifies the properties the bundle's OSCAL names.
const OSCALNamespace = "https://auditledger.dev/ns/oscal"

// writeOSCAL writes the bundle's OSCAL assessment results: one result for
// the period, reviewing the mapped controls, with one observation per
// control pointing at its folder and one finding per control: its
// assertion's result where an expectation is declared (satisfied only
// when effective), else "not-satisfied" with reason "other" and the
// remark that nothing was assessed. The back-matter holds the catalogue
// (the framework as the profile the controls are selected from), the
// plan (the expectations tested, with their digest) and every framework
// the crosswalks map from; each observation carries its crosswalks.
func writeOSCAL(w io.Writer, m *Manifest, fw *compliance.Framework, asserts map[string]*compliance.Assertion) error {
	type link = map[string]any
	all, err := compliance.All()
	if err != nil {
		return err
	}
	resourceOf := func(id string) string { return uuidFor(m.BundleID, "resource/framework/"+id) }
	var resources []link
	for _, f := range all {
		r := link{"uuid": resourceOf(f.Catalog.ID), "title": f.Catalog.Title,
			"description": fmt.Sprintf("%s %s, published by %s (%d). Source of the control identifiers: %s.", f.Catalog.Title, f.Catalog.Version, f.Catalog.Publisher, f.Catalog.Published, f.Catalog.Source),
			"props":       []link{{"name": "type", "value": "catalog"}, {"name": "framework", "ns": OSCALNamespace, "value": f.Catalog.ID}},
			"citation":    link{"text": f.Catalog.Source}}
		if f.Catalog.ID == fw.Catalog.ID {
			r["props"] = []link{{"name": "type", "value": "profile"}, {"name": "framework", "ns": OSCALNamespace, "value": f.Catalog.ID}}
			r["description"] = fmt.Sprintf("The profile the reviewed controls are selected from: %s", r["description"])
		}
		if href, ok := frameworkLinks[f.Catalog.ID]; ok {
			r["rlinks"] = []link{{"href": href}}
		}
		resources = append(resources, r)
	}
	plan := uuidFor(m.BundleID, "resource/plan")
	planRes := link{"uuid": plan, "title": "Assessment plan: the expectations each control was tested against",
		"description": fmt.Sprintf("The controls of %s (the profile, back-matter resource %s) tested against the declared expectations of this bundle's %s: each check, its population and its exceptions are defined in the auditledger FORMAT specification, section 12.1.", fw.Catalog.Title, resourceOf(fw.Catalog.ID), ExpectationsFile)}
	if m.Expectations != nil {
		planRes["rlinks"] = []link{{"href": m.Expectations.Path, "media-type": "application/yaml", "hashes": []link{{"algorithm": "SHA-256", "value": m.Expectations.SHA256}}}}
	}
	resources = append(resources, planRes)

	var include []link
	var observations, findings []link
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
		props := []link{{"name": "label", "value": oscalControlID(c.ID)}}
		var links []link
		for _, from := range fw.MappedFrom(c.ID) {
			props = append(props, link{"name": "mapped-from", "ns": OSCALNamespace, "value": from})
			id, _, _ := strings.Cut(from, " ")
			links = append(links, link{"href": "#" + resourceOf(id), "rel": "reference", "text": from})
		}
		evidence := []link{{"href": "controls/" + c.ID + "/summary.md",
			"description": "The control's rows from the sealed ledger, the queries that produced them, and their counts, in this bundle"}}
		a := asserts[c.ID]
		if a != nil {
			evidence = append(evidence, link{"href": assertionPath(c.ID),
				"description": fmt.Sprintf("The population tested (%d) and its exceptions (%d), re-derived by the verifier from events.jsonl", len(a.Rows), a.Exceptions)})
		}
		obs := link{
			"uuid":              uuidFor(m.BundleID, "observation/"+c.ID),
			"title":             fmt.Sprintf("%s %s", c.ID, c.Title),
			"description":       desc,
			"methods":           []string{"EXAMINE"},
			"types":             []string{"control-objective"},
			"props":             props,
			"relevant-evidence": evidence,
			"collected":         m.Created.Format(time.RFC3339),
		}
		if links != nil {
			obs["links"] = links
		}
		observations = append(observations, obs)
		f := link{
			"uuid":                 uuidFor(m.BundleID, "finding/"+c.ID),
			"title":                fmt.Sprintf("%s %s: %s", c.ID, c.Title, c.Result()),
			"related-observations": []link{{"observation-uuid": obs["uuid"]}},
			"props":                []link{{"name": "result", "ns": OSCALNamespace, "value": c.Result()}},
		}
		target := link{"type": "objective-id", "target-id": oscalControlID(c.ID) + "_obj"}
		switch {
		case a == nil:
			f["description"] = "No expectation is declared for this control: the ledger's observations are not assessed against anything."
			target["status"] = link{"state": "not-satisfied", "reason": "other", "remarks": "Not assessed."}
		case a.Result == compliance.Effective:
			f["description"] = fmt.Sprintf("Tested: %s Population %d, no exception.", a.Statement, len(a.Rows))
			target["status"] = link{"state": "satisfied", "reason": "pass"}
		case a.Result == compliance.Exceptions:
			f["description"] = fmt.Sprintf("Tested: %s Population %d, exceptions %d (%s, rows with an exception).", a.Statement, len(a.Rows), a.Exceptions, assertionPath(c.ID))
			target["status"] = link{"state": "not-satisfied", "reason": "fail"}
		default:
			f["description"] = fmt.Sprintf("Tested: %s Nothing the test covers happened in the period.", a.Statement)
			target["status"] = link{"state": "not-satisfied", "reason": "other", "remarks": "Not observed: no population."}
		}
		f["target"] = target
		findings = append(findings, f)
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
		"import-ap": link{"href": "#" + plan, "remarks": "The plan is the bundle's expectations, over the profile in the back-matter."},
		"results": []link{{
			"uuid":        uuidFor(m.BundleID, "result"),
			"title":       fmt.Sprintf("%s, tenant %s", fw.Catalog.Title, m.Tenant),
			"description": fmt.Sprintf("Ledger indexes %d to %d, proven against the signed checkpoints in log/ of this bundle (%s, mapping v%d).", m.Range.First, m.Range.End, fw.Catalog.ID, fw.Mapping.Version),
			"start":       start.Format(time.RFC3339),
			"end":         m.Period.To.Format(time.RFC3339),
			"reviewed-controls": link{"control-selections": []link{{
				"description":      "The controls the evidence mapping draws evidence for",
				"include-controls": include,
			}}, "links": []link{{"href": "#" + resourceOf(fw.Catalog.ID), "rel": "reference", "text": fw.Catalog.Title}}},
			"observations": observations,
			"findings":     findings,
		}},
		"back-matter": link{"resources": resources},
	}}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
