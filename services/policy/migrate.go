package policy

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Migrate rewrites a version-1 policy as version 2; name is used in
// errors. Comments and key order are kept.
//
// Version 1 limits a rule with groups: to members of those groups, which
// exempts everyone else without saying so. By default the rewritten rule
// applies to everyone, and the old exemption is written out as a comment
// right above where groups: was, to restore by hand; with keep, it is
// written as exempt: {outside_groups: [...]}, the same effect as version 1.
// notes has one line per exemption dropped (none with keep).
func Migrate(name string, b []byte, keep bool) (out []byte, notes []string, err error) {
	p, err := Read(name, b)
	if err != nil {
		return nil, nil, err
	}
	if p.Source.Version != policyfile.V1 {
		return nil, nil, fmt.Errorf("policy %s: version %d: %w", name, p.Source.Version, ErrNotVersion1)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", name, err)
	}
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "version":
			v.Value = "2"
		case policyfile.KindDeny, policyfile.KindApprove, policyfile.KindMask:
			for _, rule := range v.Content {
				if n := rewriteScope(rule, keep); n != "" {
					notes = append(notes, fmt.Sprintf("%s rule %s: %s", policyfile.Noun(k.Value), ruleID(rule), n))
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, nil, fmt.Errorf("policy %s: %w", name, err)
	}
	// What was written must load as version 2 with the same rules.
	q, err := Read(name, buf.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("policy %s: the migrated policy does not load: %w", name, err)
	}
	if len(q.Rules) != len(p.Rules) || q.Source.Version != policyfile.V2 {
		return nil, nil, fmt.Errorf("policy %s: the migrated policy has %d rules, the original %d", name, len(q.Rules), len(p.Rules))
	}
	return buf.Bytes(), notes, nil
}

// rewriteScope turns a rule's version-1 groups: into version 2 and says
// what was dropped; "" if the rule had no groups.
func rewriteScope(rule *yaml.Node, keep bool) string {
	if rule.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(rule.Content); i += 2 {
		k, v := rule.Content[i], rule.Content[i+1]
		if k.Value != "groups" {
			continue
		}
		var groups []string
		for _, g := range v.Content {
			groups = append(groups, g.Value)
		}
		exempt := policyfile.Exempt{OutsideGroups: groups}
		if keep {
			// The list keeps its style, and with it its comments:
			// exempt: {outside_groups: [dba]}, or in block style
			// exempt:\n  outside_groups:\n    - dba # the DBAs
			k.Value = "exempt"
			m := &yaml.Node{Kind: yaml.MappingNode, Style: v.Style & yaml.FlowStyle,
				Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: "outside_groups"}, v}}
			if m.Style == yaml.FlowStyle {
				m.LineComment, v.LineComment = v.LineComment, ""
			}
			rule.Content[i+1] = m
			return ""
		}
		list := strings.Join(groups, ", ")
		comment := fmt.Sprintf("# version 1 exempted everyone outside %s; to keep that: exempt: %s", list, exempt.String())
		rule.Content = append(rule.Content[:i], rule.Content[i+2:]...)
		switch {
		case rule.Style == yaml.FlowStyle || len(rule.Content) == 0:
			rule.HeadComment = joinComment(rule.HeadComment, comment)
		case i < len(rule.Content):
			rule.Content[i].HeadComment = joinComment(comment, rule.Content[i].HeadComment)
		default:
			rule.Content[i-1].FootComment = joinComment(rule.Content[i-1].FootComment, comment)
		}
		return fmt.Sprintf("version 1 exempted everyone outside %s; migrated, the rule applies to them too (--keep-exemptions keeps the exemption as exempt: %s)", list, exempt.String())
	}
	return ""
}

func joinComment(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "\n" + b
}

// ruleID is the id a rule node names, for messages.
func ruleID(rule *yaml.Node) string {
	for i := 0; i+1 < len(rule.Content); i += 2 {
		if rule.Content[i].Value == "id" {
			return rule.Content[i+1].Value
		}
	}
	return fmt.Sprintf("at line %d", rule.Line)
}
