package policyfile

import (
	"crypto/sha256"
	"encoding/hex"
)

// Source names a policy as loaded: the file, its format version and the
// SHA-256 of its bytes. Every event a gateway judges with the policy
// carries Ref (version and digest), so an auditor can tell which rules
// were in force; the policy.loaded event carries all of it.
type Source struct {
	File    string `json:"file"`
	Version int    `json:"version"`
	SHA256  string `json:"sha256"` // lowercase hex of the file's bytes
}

// NewSource describes file, whose bytes are b, in format version.
func NewSource(file string, b []byte, version int) Source {
	sum := sha256.Sum256(b)
	return Source{File: file, Version: version, SHA256: hex.EncodeToString(sum[:])}
}

// Ref is the part of Source each judged event carries.
type Ref struct {
	Version int    `json:"version"`
	SHA256  string `json:"sha256"`
}

// Ref returns the reference events carry.
func (s Source) Ref() Ref { return Ref{Version: s.Version, SHA256: s.SHA256} }

// Omission is an exemption a version-1 file makes without saying so: a rule
// limited to groups ("groups: [dba]") does not apply to anyone outside
// them. Version 2 states every exemption (exempt:); a version-1 file still
// loads, and each omission is reported in its policy.loaded event.
type Omission struct {
	Rule   string   `json:"rule"`   // the rule's id
	Kind   string   `json:"kind"`   // deny, approve or mask
	Groups []string `json:"groups"` // the rule applies only to members of these
}

// Loaded is what a parsed policy reports about itself; each gateway's
// policy type embeds it, and the gateway core records it as policy.loaded
// before the gateway serves.
type Loaded struct {
	Source    Source
	Omissions []Omission
}

// Info returns the policy's description.
func (l *Loaded) Info() *Loaded { return l }
