package evidence_test

import (
	"fmt"
	"strings"

	"github.com/auditledger/auditledger/projections/evidence"
)

// olderExpectations is an expectations file of version 5 turned to an
// older version: the version line changed and, below version 4, the
// checks of version 4 (log-verified, log-intact), which an older file
// cannot declare, left out.
func olderExpectations(b []byte, version int) []byte {
	s := strings.Replace(string(b), "\nversion: 5\n", fmt.Sprintf("\nversion: %d\n", version), 1)
	for _, check := range []string{"log-verified", "log-intact"} {
		if version >= 4 {
			break
		}
		i := strings.Index(s, "\n    check: "+check+"\n")
		if i < 0 {
			continue
		}
		start := strings.LastIndex(s[:i], "\n  - control: ") + 1
		end := strings.Index(s[i+1:], "\n  - control: ")
		if end < 0 {
			s = s[:start]
		} else {
			s = s[:start] + s[i+1+end+1:]
		}
	}
	return []byte(s)
}

// withoutVersion4Assertions drops from m the assertions of the controls
// an older expectations file (olderExpectations) does not declare.
func withoutVersion4Assertions(m *evidence.Manifest) {
	for i := range m.Controls {
		if a := m.Controls[i].Assertion; a != nil && (a.Check == "log-verified" || a.Check == "log-intact") {
			m.Controls[i].Assertion = nil
		}
	}
}
