package siem

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
)

// OCSFVersion is the OCSF schema version of the rendering; the schema's
// files are in testdata, and the tests validate every event type against
// them.
const OCSFVersion = "1.2.0"

// OCSF classes used (class_uid = category_uid × 1000 + the class's uid).
const (
	ocsfAuthentication       = 3002 // Identity & Access Management
	ocsfUserAccess           = 3005 // User Access Management
	ocsfHTTPActivity         = 4002 // Network Activity
	ocsfApplicationLifecycle = 6002 // Application Activity
	ocsfAPIActivity          = 6003
	ocsfDatastoreActivity    = 6005
	ocsfDataSecurityFinding  = 2006 // Findings
)

// datastoreActivity maps a statement's first keyword to Datastore
// Activity's activity_id.
func datastoreActivity(kind string) (int, string) {
	switch strings.ToUpper(kind) {
	case "SELECT", "WITH", "SHOW", "EXPLAIN", "FETCH":
		return 4, "Query"
	case "UPDATE":
		return 2, "Update"
	case "INSERT", "COPY", "MERGE":
		return 5, "Write"
	case "CREATE":
		return 6, "Create"
	case "DELETE", "DROP", "TRUNCATE":
		return 7, "Delete"
	}
	return 99, "Other"
}

// httpMethodActivity maps a method to HTTP Activity's activity_id.
var httpMethodActivity = map[string]int{"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6, "PUT": 7, "TRACE": 8, "PATCH": 9}

// RenderOCSF renders s as one OCSF 1.2.0 event of the class docs/SIEM.md
// gives its type. The ledger's coordinates are in metadata.uid (the event
// id) and unmapped.auditledger (index, leaf, tenant, type).
func RenderOCSF(s Sealed) ([]byte, error) {
	ev := s.Event
	p := payload(ev)
	sevOCSF, _ := severity(ev.Type)
	o := map[string]any{
		"time":        ev.Time.UnixMilli(),
		"severity_id": sevOCSF,
		"message":     short(oneLine(summary(ev, p)), 1024),
		"metadata": map[string]any{
			"version":         OCSFVersion,
			"product":         map[string]any{"name": "auditledger", "vendor_name": "auditledger", "feature": map[string]any{"name": ev.Source.Kind}},
			"uid":             ev.ID,
			"tenant_uid":      ev.Tenant,
			"log_name":        "auditledger",
			"original_time":   ev.Time.UTC().Format(time.RFC3339Nano),
			"logged_time":     s.SealedAt.UnixMilli(),
			"correlation_uid": ev.SessionID,
		},
		"unmapped": map[string]any{"auditledger": map[string]any{
			"index": s.Index, "leaf": hex.EncodeToString(s.Leaf[:]), "tenant": ev.Tenant, "type": string(ev.Type),
			"source_instance": ev.Source.Instance, "session_seq": ev.SessionSeq,
		}},
	}
	meta := o["metadata"].(map[string]any)
	if ref, ok := p["policy"].(map[string]any); ok {
		// The policy that judged the event (docs/FORMAT.md §1.3).
		o["unmapped"].(map[string]any)["auditledger"].(map[string]any)["policy"] = ref
	}
	if ev.SessionID == "" {
		delete(meta, "correlation_uid")
	}
	user := ocsfUser(ev.Actor)
	actor := map[string]any{"user": user}
	src, known := endpoint(str(p, "client_addr"))
	if !known {
		src = map[string]any{"name": "unknown"}
	}
	profiles := []string{}
	class, activity, activityName := 0, 0, ""
	http := isHTTP(ev, p)
	switch ev.Type {
	case events.SessionStarted, events.SessionEnded, events.AuthnSucceeded, events.AuthnFailed:
		class, activity, activityName = ocsfAuthentication, 1, "Logon"
		if ev.Type == events.SessionEnded {
			activity, activityName = 2, "Logoff"
		}
		o["user"] = user
		o["src_endpoint"] = src
		o["status_id"] = 1
		if ev.Type == events.AuthnFailed {
			o["status_id"], o["status_detail"] = 2, short(str(p, "reason"), 256)
		}
		if ev.Actor.Issuer != "" {
			o["auth_protocol_id"], o["auth_protocol"] = 99, "OpenID Connect"
		}
		if ev.SessionID != "" {
			o["session"] = map[string]any{"uid": ev.SessionID, "issuer": ev.Actor.Issuer}
		}
	case events.CommandExecuted, events.CommandBlocked, events.ResponseDigest:
		o["actor"], o["src_endpoint"] = actor, src
		if ev.Type == events.CommandBlocked {
			profiles = append(profiles, "security_control")
			o["action_id"], o["action"], o["disposition_id"], o["disposition"] = 2, "Denied", 2, "Blocked"
			o["status_id"], o["status_detail"] = 2, short(str(p, "reason"), 256)
		}
		switch {
		case http && ev.Type == events.ResponseDigest:
			class, activity, activityName = ocsfHTTPActivity, 99, "Response"
			code, _ := num(p, "status")
			o["http_request"] = map[string]any{"uid": str(p, "command_id")}
			o["http_response"] = map[string]any{"code": code, "content_type": str(p, "content_type")}
			o["dst_endpoint"] = targetEndpoint(ev)
			delete(o, "actor")
		case http && ev.Type == events.CommandBlocked:
			// HTTP Activity carries the security control profile: the
			// request, denied, answered 403 by the proxy.
			method := str(p, "method")
			class, activity, activityName = ocsfHTTPActivity, httpMethodActivity[method], method
			if activity == 0 {
				activity, activityName = 99, "Other"
			}
			o["http_request"] = map[string]any{"http_method": method, "url": map[string]any{"path": str(p, "path"), "query_string": str(p, "query")}}
			o["http_response"] = map[string]any{"code": 403}
			o["dst_endpoint"] = targetEndpoint(ev)
			profiles = append(profiles, "host") // for actor, in network classes
		case http:
			class, activity, activityName = ocsfAPIActivity, 99, "Request"
			method := str(p, "method")
			switch method {
			case "GET", "HEAD", "OPTIONS":
				activity, activityName = 2, "Read"
			case "POST":
				activity, activityName = 1, "Create"
			case "PUT", "PATCH":
				activity, activityName = 3, "Update"
			case "DELETE":
				activity, activityName = 4, "Delete"
			}
			o["api"] = map[string]any{"operation": short(statement(p), 1024)}
			o["http_request"] = map[string]any{"http_method": method, "url": map[string]any{"path": str(p, "path"), "query_string": str(p, "query")}}
			o["dst_endpoint"] = targetEndpoint(ev)
		default:
			class = ocsfDatastoreActivity
			activity, activityName = datastoreActivity(str(p, "kind"))
			if ev.Type == events.ResponseDigest {
				activity, activityName = 99, "Result"
			}
			if ev.Target != nil {
				db := map[string]any{"type_id": 1, "type": "Relational", "name": ev.Target.Database}
				if db["name"] == "" {
					db["name"] = ev.Target.Name
				}
				o["database"] = db
			}
			if st := statement(p); st != "" {
				o["query_info"] = map[string]any{"query_string": short(st, 4096), "uid": ev.ID}
			}
			if rows, ok := num(p, "rows"); ok {
				data := map[string]any{"rows": rows, "command_tag": str(p, "command_tag")}
				// The result's keyed digest (docs/FORMAT.md §1.5); records
				// written before digests were keyed carry "sha256".
				for _, k := range []string{"hmac", "sha256"} {
					if v := str(p, k); v != "" {
						data[k] = v
					}
				}
				o["query_info"] = map[string]any{"query_string": "(result of " + str(p, "command_id") + ")", "uid": str(p, "command_id"), "data": data}
			}
		}
	case events.MaskApplied:
		class, activity, activityName = ocsfDataSecurityFinding, 1, "Create"
		profiles = append(profiles, "security_control")
		o["action_id"], o["action"] = 99, "Masked"
		field := str(p, "column")
		if field == "" {
			field = str(p, "field")
		}
		o["finding_info"] = map[string]any{"uid": ev.ID, "title": short("Masked "+field+" by rule "+str(p, "rule_id"), 256),
			"types": []string{str(p, "info_type")}, "desc": "method " + str(p, "method") + ", command " + str(p, "command_id")}
		o["actor"] = actor
	case events.ApprovalRequested, events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired, events.AccessGranted, events.AccessRevoked,
		events.SSHCertificateIssued, events.AccessRequested, events.AccessApproved, events.AccessDenied, events.AccessExpired:
		class = ocsfUserAccess
		switch ev.Type {
		case events.ApprovalGranted, events.AccessGranted, events.SSHCertificateIssued:
			activity, activityName = 1, "Assign Privileges"
		case events.AccessRevoked:
			activity, activityName = 2, "Revoke Privileges"
		default:
			activity, activityName = 99, strings.TrimPrefix(strings.TrimPrefix(string(ev.Type), "approval."), "access.")
		}
		// The approver: actor comes with the host profile in IAM classes.
		o["actor"] = actor
		profiles = append(profiles, "host")
		// The user whose access is decided: the requester, named in a
		// decision's payload; the actor for a request.
		o["user"] = user
		if req, ok := p["requester"].(map[string]any); ok {
			o["user"] = map[string]any{"uid": req["subject"], "type_id": 1}
		}
		o["privileges"] = []string{"execute statement sha256:" + str(p, "statement_sha256")}
		o["resource"] = map[string]any{"uid": str(p, "approval_id"), "type": "approval"}
		if id := str(p, "access_id"); id != "" { // a just-in-time access grant
			o["privileges"] = []string{"access target " + str(p, "target")}
			o["resource"] = map[string]any{"uid": id, "type": "access-grant"}
		}
	case events.AuditAccessed, events.EvidenceExported:
		class, activity, activityName = ocsfAPIActivity, 2, "Read"
		o["actor"], o["src_endpoint"] = actor, src
		o["api"] = map[string]any{"operation": strings.TrimSpace(str(p, "method") + " " + str(p, "path"))}
	default: // the ledger's own records, attestations
		class, activity, activityName = ocsfApplicationLifecycle, 99, string(ev.Type)
		o["app"] = map[string]any{"name": "auditledger", "vendor_name": "auditledger", "uid": ev.Source.Instance}
	}
	o["class_uid"], o["category_uid"] = class, class/1000
	o["activity_id"], o["activity_name"] = activity, activityName
	o["type_uid"] = class*100 + activity
	if len(profiles) > 0 {
		meta["profiles"] = profiles
	}
	return json.Marshal(o)
}

func ocsfUser(a events.Actor) map[string]any {
	u := map[string]any{"uid": a.Subject, "type_id": 1, "type": "User"}
	if a.Kind == events.Machine {
		u["type_id"], u["type"] = 3, "System"
	}
	if a.Email != "" {
		u["email_addr"] = a.Email
	}
	if len(a.Groups) > 0 {
		var gs []map[string]any
		for _, g := range a.Groups {
			gs = append(gs, map[string]any{"name": g})
		}
		u["groups"] = gs
	}
	return u
}

func targetEndpoint(ev *events.Event) map[string]any {
	e := map[string]any{"name": "unknown"}
	if ev.Target != nil {
		if ev.Target.Name != "" {
			e["name"] = ev.Target.Name
		}
		if ev.Target.Host != "" {
			e["hostname"] = ev.Target.Host
		}
	}
	return e
}

// summary is a one-line description of an event, for OCSF's message and
// CEF's name.
func summary(ev *events.Event, p map[string]any) string {
	switch ev.Type {
	case events.CommandExecuted, events.CommandBlocked:
		return string(ev.Type) + ": " + statement(p)
	case events.MaskApplied:
		return "mask " + str(p, "rule_id") + " on " + str(p, "column") + str(p, "field")
	case events.ApprovalRequested, events.ApprovalGranted, events.ApprovalDenied, events.ApprovalExpired:
		return string(ev.Type) + " " + str(p, "approval_id")
	case events.AccessRequested, events.AccessApproved, events.AccessDenied, events.AccessExpired:
		return string(ev.Type) + " " + str(p, "access_id") + " on " + str(p, "target")
	case events.AuditAccessed:
		return "audit data read: " + str(p, "resource")
	}
	return string(ev.Type)
}
