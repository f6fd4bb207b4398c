package gateway

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/auditledger/auditledger/services/internal/policyfile"
)

// Policy is what the core needs of a gateway's policy: the description
// its type embeds (policyfile.Loaded).
type Policy interface {
	Info() *policyfile.Loaded
}

// ErrPolicy: a policy file cannot be read or does not parse.
var ErrPolicy = errors.New("policy file")

// LoadPolicy reads a policy file and parses it with the gateway's own
// parser (which names the line of an error and fills in the exemptions
// the file makes by omission), then fills in Source: the file, its
// format version and the SHA-256 of the bytes read — the bytes parsed,
// so the digest names exactly the rules in force.
func LoadPolicy[P Policy](file string, parse func(name string, b []byte) (P, error)) (P, error) {
	var zero P
	b, err := os.ReadFile(file)
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrPolicy, err)
	}
	p, err := parse(file, b)
	if err != nil {
		return zero, err
	}
	var head struct {
		Version int `yaml:"version"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		return zero, fmt.Errorf("%w %s: version: %w", ErrPolicy, file, err)
	}
	p.Info().Source = policyfile.NewSource(file, b, head.Version)
	return p, nil
}
