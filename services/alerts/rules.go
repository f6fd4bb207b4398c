// Package alerts raises alerts on sealed events: rules match records of
// AUDIT_LEDGER (by type, tenant, target, group, policy rule, a field's
// value, a rate) and each alert goes to Slack-compatible incoming
// webhooks, to the signed webhook of docs/SIEM.md, or onto the bus as an
// alert.raised event (docs/ALERTS.md). The alerter follows AUDIT_LEDGER
// with the SIEM forwarders' machinery (services/siem): a durable consumer
// acknowledged only once every alert of a record is delivered, retries
// with a cap, and refused alerts parked.
//
// Alerts are built from sealed records only, which the gateways have
// already scrubbed; a sealed field (actor.email) is never read.
package alerts

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/auditledger/auditledger/events"
	"github.com/auditledger/auditledger/internal/yamlstrict"
)

// Settings are the alerter's destinations and rules, as written in the
// alerter section of the configuration or in its rules file.
type Settings struct {
	Destinations []DestinationConfig `yaml:"destinations"`
	Rules        []RuleConfig        `yaml:"rules"`
}

// Destination kinds.
const (
	KindSlack   = "slack"   // a Slack-compatible incoming webhook (Mattermost too)
	KindWebhook = "webhook" // the signed webhook of docs/SIEM.md
	KindEvent   = "event"   // an alert.raised event on the bus
)

// DestinationConfig is one place alerts go.
type DestinationConfig struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// URLEnv names the variable holding the URL: a Slack-compatible
	// webhook's URL is its secret, so it is never in the file.
	URLEnv string `yaml:"url_env"`
	// URL is the signed webhook's endpoint (kind webhook only; url_env
	// may be used instead).
	URL string `yaml:"url"`
	// SecretEnv names the variable holding the signed webhook's HMAC key.
	SecretEnv string `yaml:"secret_env"`
}

// RuleConfig is one rule as written.
type RuleConfig struct {
	ID       string      `yaml:"id"`
	Title    string      `yaml:"title"`
	Severity string      `yaml:"severity"`
	Match    MatchConfig `yaml:"match"`
	Rate     *RateConfig `yaml:"rate"`
	Limit    *LimitCfg   `yaml:"limit"`
	To       []string    `yaml:"to"`
}

// MatchConfig selects events; every list given must match (a list
// matches when any of its values does), an empty one matches all.
type MatchConfig struct {
	// Types are event types, or a prefix and ".*" (access.*): a type
	// not in this build's catalog is accepted in the prefix form only.
	Types   []string `yaml:"types"`
	Tenants []string `yaml:"tenants"`
	// Targets match target.name.
	Targets []string `yaml:"targets"`
	// Groups match any of actor.groups.
	Groups []string `yaml:"groups"`
	// PolicyRules match payload.rule (the policy rule that blocked or
	// held a statement).
	PolicyRules []string `yaml:"policy_rules"`
	// Fields map a field path (Fields) to the values it may have.
	Fields map[string][]string `yaml:"fields"`
}

// RateConfig makes a rule fire only when Count matching events with the
// same value of Key fall within Within of each other (by event time).
type RateConfig struct {
	Count  int    `yaml:"count"`
	Within string `yaml:"within"`
	Key    string `yaml:"key"`
}

// LimitCfg bounds a rule's alerts: at most Alerts per Per (by event
// time); the rest are counted and the next alert says how many.
type LimitCfg struct {
	Alerts int    `yaml:"alerts"`
	Per    string `yaml:"per"`
}

// Severities a rule may have.
var Severities = []string{"info", "low", "medium", "high", "critical"}

// Rule is a checked rule.
type Rule struct {
	ID, Title, Severity string
	types               []string
	tenants, targets    []string
	groups, policyRules []string
	fields              map[string][]string
	rate                *rate
	limit               *limit
	To                  []string
}

type rate struct {
	count  int
	within time.Duration
	key    string
}

type limit struct {
	alerts int
	per    time.Duration
}

var (
	ruleID   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	typeName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$`)
)

// Fields are the field paths a rule may match or key a rate on; payload.*
// is any member of the payload, dotted for nested objects.
var Fields = []string{"type", "tenant", "session_id", "source.kind", "source.instance",
	"actor.issuer", "actor.subject", "actor.kind", "target.kind", "target.name", "target.host", "target.database", "payload.NAME"}

// checkField refuses a path that is not a field a rule may read.
func checkField(path string) error {
	if strings.HasPrefix(path, "payload.") && len(path) > len("payload.") && !strings.HasSuffix(path, ".") && !strings.Contains(path, "..") {
		return nil
	}
	if path == "actor.email" {
		return fmt.Errorf("%q is a sealed personal value and is never read by alerts", path)
	}
	if !slices.Contains(Fields, path) || path == "payload.NAME" {
		return fmt.Errorf("%q is not a field (want one of %s)", path, strings.Join(Fields, ", "))
	}
	return nil
}

// ReadRulesFile reads a rules file: the same destinations and rules as
// the configuration section, strictly (an unknown key is an error).
func ReadRulesFile(path string) (Settings, error) {
	var s Settings
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := yamlstrict.Decode(b, &s, "the alert rules (docs/ALERTS.md documents every field)"); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// EnvPrefix begins the names of the variables that hold a destination's
// URL or key, when they begin with AUDITLEDGER_ at all: serve refuses any
// other AUDITLEDGER_* name it does not read.
const EnvPrefix = "AUDITLEDGER_ALERT_"

// checkEnv refuses a variable name serve would refuse.
func checkEnv(at, field, name string) error {
	if strings.HasPrefix(name, "AUDITLEDGER_") && !strings.HasPrefix(name, EnvPrefix) {
		return fmt.Errorf("%s.%s %q: a variable of your own begins %s (or not AUDITLEDGER_ at all)", at, field, name, EnvPrefix)
	}
	return nil
}

// Check validates s, naming the bad field as section.rules[i].FIELD, and
// returns the rules. getenv reads the variables destinations name.
func (s Settings) Check(section string, getenv func(string) string) ([]*Rule, error) {
	names := map[string]string{}
	for i, d := range s.Destinations {
		at := fmt.Sprintf("%s.destinations[%d]", section, i)
		if !ruleID.MatchString(d.Name) {
			return nil, fmt.Errorf("%s.name %q: want 1-64 of a-z, 0-9, _ and -", at, d.Name)
		}
		if _, dup := names[d.Name]; dup {
			return nil, fmt.Errorf("%s.name %q: named twice", at, d.Name)
		}
		names[d.Name] = d.Kind
		if err := checkEnv(at, "url_env", d.URLEnv); err != nil {
			return nil, err
		}
		if err := checkEnv(at, "secret_env", d.SecretEnv); err != nil {
			return nil, err
		}
		switch d.Kind {
		case KindSlack:
			if d.URL != "" {
				return nil, fmt.Errorf("%s.url: a Slack-compatible webhook's URL is a secret: name the variable that holds it in url_env", at)
			}
			if d.URLEnv == "" || getenv(d.URLEnv) == "" {
				return nil, fmt.Errorf("%s.url_env: name a variable holding the webhook URL (%q is unset)", at, d.URLEnv)
			}
			if d.SecretEnv != "" {
				return nil, fmt.Errorf("%s.secret_env: only a webhook destination is signed", at)
			}
		case KindWebhook:
			if (d.URL == "") == (d.URLEnv == "") {
				return nil, fmt.Errorf("%s: give the endpoint in url or url_env, one of them", at)
			}
			if d.URLEnv != "" && getenv(d.URLEnv) == "" {
				return nil, fmt.Errorf("%s.url_env: %q is unset", at, d.URLEnv)
			}
			if d.SecretEnv == "" || getenv(d.SecretEnv) == "" {
				return nil, fmt.Errorf("%s.secret_env: name a variable holding the HMAC key receivers check the signature with (%q is unset)", at, d.SecretEnv)
			}
		case KindEvent:
			if d.URL != "" || d.URLEnv != "" || d.SecretEnv != "" {
				return nil, fmt.Errorf("%s: an event destination takes no url, url_env or secret_env", at)
			}
		default:
			return nil, fmt.Errorf("%s.kind %q: want slack, webhook or event", at, d.Kind)
		}
	}
	var rules []*Rule
	ids := map[string]bool{}
	given := s.Rules
	if bg := BreakGlass(s.Destinations); bg != nil && !slices.ContainsFunc(given, func(rc RuleConfig) bool { return rc.ID == BreakGlassRule }) {
		given = append(slices.Clip(given), *bg)
	}
	for i, rc := range given {
		at := fmt.Sprintf("%s.rules[%d]", section, i)
		r, err := rc.check(at, names)
		if err != nil {
			return nil, err
		}
		if ids[r.ID] {
			return nil, fmt.Errorf("%s.id %q: used by an earlier rule", at, r.ID)
		}
		ids[r.ID] = true
		rules = append(rules, r)
	}
	return rules, nil
}

// BreakGlassRule is the id of the built-in rule that alerts on every
// break-glass grant.
const BreakGlassRule = "break-glass"

// BreakGlass is the built-in rule: a break-glass grant (access.granted
// with break_glass true, as the access broker records it) alerts at
// once, critical, to every destination. A rule of the operator's with
// the same id replaces it (to route or reword it). Nil without
// destinations.
func BreakGlass(destinations []DestinationConfig) *RuleConfig {
	if len(destinations) == 0 {
		return nil
	}
	rc := &RuleConfig{ID: BreakGlassRule, Title: "Break-glass access granted: review required", Severity: "critical",
		Match: MatchConfig{Types: []string{string(events.AccessGranted)}, Fields: map[string][]string{"payload.break_glass": {"true"}}}}
	for _, d := range destinations {
		rc.To = append(rc.To, d.Name)
	}
	return rc
}

func (rc RuleConfig) check(at string, destinations map[string]string) (*Rule, error) {
	if !ruleID.MatchString(rc.ID) {
		return nil, fmt.Errorf("%s.id %q: want 1-64 of a-z, 0-9, _ and -, beginning with a letter or digit", at, rc.ID)
	}
	at = fmt.Sprintf("%s (%s)", at, rc.ID)
	r := &Rule{ID: rc.ID, Title: rc.Title, Severity: rc.Severity, tenants: rc.Match.Tenants, targets: rc.Match.Targets,
		groups: rc.Match.Groups, policyRules: rc.Match.PolicyRules, fields: rc.Match.Fields, To: rc.To}
	if r.Title == "" {
		r.Title = rc.ID
	}
	if len(r.Title) > 150 {
		return nil, fmt.Errorf("%s.title: %d bytes, at most 150", at, len(r.Title))
	}
	if r.Severity == "" {
		r.Severity = "medium"
	}
	if !slices.Contains(Severities, r.Severity) {
		return nil, fmt.Errorf("%s.severity %q: want one of %s", at, r.Severity, strings.Join(Severities, ", "))
	}
	alertTypes := false
	for j, t := range rc.Match.Types {
		if !typeName.MatchString(t) {
			return nil, fmt.Errorf("%s.match.types[%d] %q: not an event type name (e.g. command.blocked) nor a prefix (access.*)", at, j, t)
		}
		if !strings.HasSuffix(t, ".*") && !events.Type(t).Known() {
			return nil, fmt.Errorf("%s.match.types[%d] %q: not an event type of this release (docs/FORMAT.md §1); write %s.* to match the types of a family, present and future",
				at, j, t, strings.SplitN(t, ".", 2)[0])
		}
		if t == string(events.AlertRaised) || t == "alert.*" {
			alertTypes = true
		}
		r.types = append(r.types, t)
	}
	for j, v := range [][]string{rc.Match.Tenants, rc.Match.Targets, rc.Match.Groups, rc.Match.PolicyRules} {
		if slices.Contains(v, "") {
			return nil, fmt.Errorf("%s.match.%s: an empty value", at, []string{"tenants", "targets", "groups", "policy_rules"}[j])
		}
	}
	for path, vals := range rc.Match.Fields {
		if err := checkField(path); err != nil {
			return nil, fmt.Errorf("%s.match.fields: %w", at, err)
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("%s.match.fields[%q]: no value to match", at, path)
		}
	}
	if rc.Rate != nil {
		d, err := time.ParseDuration(rc.Rate.Within)
		switch {
		case err != nil || d <= 0:
			return nil, fmt.Errorf("%s.rate.within %q: want a positive duration (e.g. 1m)", at, rc.Rate.Within)
		case rc.Rate.Count < 2:
			return nil, fmt.Errorf("%s.rate.count %d: want 2 or more (a rule without rate fires on every event)", at, rc.Rate.Count)
		case rc.Rate.Count > 10000:
			return nil, fmt.Errorf("%s.rate.count %d: at most 10000", at, rc.Rate.Count)
		}
		if rc.Rate.Key != "" {
			if err := checkField(rc.Rate.Key); err != nil {
				return nil, fmt.Errorf("%s.rate.key: %w", at, err)
			}
		}
		r.rate = &rate{count: rc.Rate.Count, within: d, key: rc.Rate.Key}
	}
	if rc.Limit != nil {
		d, err := time.ParseDuration(rc.Limit.Per)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s.limit.per %q: want a positive duration (e.g. 1h)", at, rc.Limit.Per)
		}
		if rc.Limit.Alerts < 1 {
			return nil, fmt.Errorf("%s.limit.alerts %d: want 1 or more", at, rc.Limit.Alerts)
		}
		r.limit = &limit{alerts: rc.Limit.Alerts, per: d}
	}
	if len(rc.To) == 0 {
		return nil, fmt.Errorf("%s.to: name at least one destination", at)
	}
	for j, name := range rc.To {
		kind, ok := destinations[name]
		if !ok {
			return nil, fmt.Errorf("%s.to[%d] %q: no destination of that name", at, j, name)
		}
		if slices.Contains(rc.To[:j], name) {
			return nil, fmt.Errorf("%s.to[%d] %q: named twice", at, j, name)
		}
		if kind == KindEvent && alertTypes {
			return nil, fmt.Errorf("%s.to[%d] %q: a rule matching alert.raised cannot raise alert.raised events (each would raise the next)", at, j, name)
		}
	}
	return r, nil
}

// Matches reports whether ev passes the rule's match (not its rate).
// alert.raised events match only a rule that names them.
func (r *Rule) Matches(ev *events.Event) bool {
	if !r.typeMatches(ev.Type) {
		return false
	}
	if len(r.tenants) > 0 && !slices.Contains(r.tenants, ev.Tenant) {
		return false
	}
	if len(r.targets) > 0 && (ev.Target == nil || !slices.Contains(r.targets, ev.Target.Name)) {
		return false
	}
	if len(r.groups) > 0 && !slices.ContainsFunc(ev.Actor.Groups, func(g string) bool { return slices.Contains(r.groups, g) }) {
		return false
	}
	if len(r.policyRules) > 0 {
		v, ok := Field(ev, "payload.rule")
		if !ok || !slices.Contains(r.policyRules, v) {
			return false
		}
	}
	for path, vals := range r.fields {
		v, ok := Field(ev, path)
		if !ok || !slices.Contains(vals, v) {
			return false
		}
	}
	return true
}

func (r *Rule) typeMatches(t events.Type) bool {
	if len(r.types) == 0 {
		return t != events.AlertRaised
	}
	for _, want := range r.types {
		if prefix, ok := strings.CutSuffix(want, "*"); ok {
			if strings.HasPrefix(string(t), prefix) {
				return true
			}
		} else if string(t) == want {
			return true
		}
	}
	return false
}
