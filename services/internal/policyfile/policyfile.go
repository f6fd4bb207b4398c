// Package policyfile holds what every gateway's YAML policy file shares:
// strict decoding with errors that name the file and line, the version
// check (1 and 2), who a rule applies to (Scope, Exempt: in version 2
// every rule applies to everyone unless exempt: names them, and a
// version-1 groups: list is read as the exemption it makes by omission),
// the view of a gateway's rules for one requester (Rules.For), the checks
// of a mask rule, and what a loaded policy reports about itself (Loaded).
// The format is documented in docs/POLICY.md.
package policyfile

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/events/detect"
	"github.com/auditledger/auditledger/internal/yamlstrict"
	"github.com/auditledger/auditledger/services/mask"
)

// Versions this package reads. Version 2 differs from 1 only in who a
// rule applies to: everyone, unless exempt: says otherwise (see Scope).
const (
	V1 = 1
	V2 = 2
)

// Decode decodes policy text strictly (unknown keys are errors, at their
// line, with the nearest known key) into doc, whose version must be 1 or
// 2; name is used in errors.
func Decode(name string, b []byte, doc interface{ Ver() int }) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("policy %s: %w", name, err)
	}
	if len(root.Content) > 0 {
		if err := yamlstrict.DecodeNode(&root, doc, "the policy"); err != nil {
			return fmt.Errorf("policy %s: %w", name, err)
		}
	}
	if v := doc.Ver(); v != V1 && v != V2 {
		return fmt.Errorf("policy %s: version: %d, this proxy reads versions 1 and 2", name, v)
	}
	return nil
}

// Header is the top of every policy file; embed it inline.
type Header struct {
	Version    int    `yaml:"version"`
	HashKeyEnv string `yaml:"hash_key_env"`

	ids map[string]bool // kind and id of each rule Scope has seen
}

// Sections are the rule lists of every policy file, each rule undecoded
// (yaml.Node keeps its line for errors); embed them inline beside Header.
type Sections struct {
	Mask    []yaml.Node `yaml:"mask"`
	Deny    []yaml.Node `yaml:"deny"`
	Approve []yaml.Node `yaml:"approve"`
	// Access holds the just-in-time access rules (services/access reads
	// them; every gateway and the API share one reading).
	Access []yaml.Node `yaml:"access"`
}

// Ver returns the version.
func (h *Header) Ver() int { return h.Version }

// LineError names the file and line of a rule. A FieldError among args
// names its own, more precise line, which is used instead.
func LineError(name string, line int, format string, args ...any) error {
	for _, a := range args {
		if fe, ok := a.(*yamlstrict.FieldError); ok {
			return fmt.Errorf("policy %s: %w", name, fe)
		}
	}
	return fmt.Errorf("policy %s: line %d: %s", name, line, fmt.Sprintf(format, args...))
}

// Mask is what every mask rule has, whatever it matches (columns,
// fields); embed it inline.
type Mask struct {
	Scope    `yaml:",inline"`
	ID       string   `yaml:"id"`
	Version  int      `yaml:"version"` // default 1
	Detect   []string `yaml:"detect"`  // value detectors (detect.DetectorNames)
	Method   string   `yaml:"method"`  // redact, partial, hash
	InfoType string   `yaml:"info_type"`
}

// DecodeMask decodes the mask rule n strictly into r, a rule type that
// embeds m, checks it (CheckMask, then Scope, recording into l what a
// version-1 file exempts by omission) and sets *key to the key of method
// hash if it uses one. targets counts what r matches by name once
// decoded; what names those ("columns", "fields") in errors. The caller
// places errors at n's line (LineError).
func (h *Header) DecodeMask(l *Loaded, key *[]byte, n *yaml.Node, r any, m *Mask, targets func() int, what string) error {
	if err := yamlstrict.DecodeNode(n, r, "a mask rule"); err != nil {
		return err
	}
	k, err := h.CheckMask(m, targets(), what)
	if err != nil {
		return err
	}
	if err := h.Scope(l, KindMask, m.ID, &m.Scope); err != nil {
		return err
	}
	if k != nil {
		*key = k
	}
	return nil
}

// CheckMask checks a mask rule that matches targets by name (what names
// them, "columns" or "fields", for errors) besides its detectors, sets its
// default version, and returns the key of method hash (read from the
// environment variable the header names), or nil.
func (h *Header) CheckMask(m *Mask, targets int, what string) ([]byte, error) {
	switch {
	case m.ID == "":
		return nil, errors.New("mask rule needs an id")
	case targets == 0 && len(m.Detect) == 0:
		return nil, fmt.Errorf("mask rule %s needs %s or detect", m.ID, what)
	}
	if m.Version == 0 {
		m.Version = 1
	}
	var key []byte
	switch m.Method {
	case mask.Redact, mask.Partial:
	case mask.Hash:
		if h.HashKeyEnv == "" || os.Getenv(h.HashKeyEnv) == "" {
			return nil, fmt.Errorf("mask rule %s uses method hash: set hash_key_env to an environment variable holding the key", m.ID)
		}
		key = []byte(os.Getenv(h.HashKeyEnv))
	default:
		return nil, fmt.Errorf("mask rule %s: method %q, want redact, partial or hash", m.ID, m.Method)
	}
	for _, d := range m.Detect {
		if !detect.Known(d) {
			return nil, fmt.Errorf("mask rule %s: unknown detector %q (known: %s)", m.ID, d, detect.DetectorNames)
		}
	}
	return key, nil
}
