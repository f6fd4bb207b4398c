package gateway

import (
	"slices"
	"strings"

	"github.com/auditledger/auditledger/events/detect"
)

// maxJoined is the most strings JoinedRuns joins into one value.
const maxJoined = 4

// JoinedRuns returns the values that runs of 2 to maxJoined adjacent
// texts make joined — texts a program reads side by side: a body's
// members, environment variables, a command's arguments — each text in
// one value at most, the longest runs first. A run is joined without and
// with a space between (detect.JoinSeparators) and judged as one whole
// value (detect.Find): a run that only holds a value among other text is
// not taken, and a run of numbers only when their digit groups are all
// of one length of 4 digits or more (evenGroups), so that ports, sizes,
// counts and dates side by side do not read as a card number.
func JoinedRuns(texts []string) []detect.Joined {
	var out []detect.Joined
	taken := make([]bool, len(texts))
	for w := maxJoined; w >= 2; w-- {
		for i := 0; i+w <= len(texts); i++ {
			if slices.Contains(taken[i:i+w], true) {
				continue
			}
			parts := make([]string, w)
			for k := range parts {
				parts[k] = strings.TrimSpace(texts[i+k])
			}
			if digitsOnly(parts) && !evenGroups(parts) {
				continue
			}
			for _, sep := range detect.JoinSeparators {
				joined := strings.Join(parts, sep)
				d := detect.Find([]byte(joined))
				if d == "" {
					continue
				}
				j := detect.Joined{Detector: d, Value: joined}
				for k := i; k < i+w; k++ {
					taken[k] = true
					j.Parts = append(j.Parts, k)
				}
				out = append(out, j)
				break
			}
		}
	}
	return out
}

// digitsOnly reports whether every part is digits and the separators of
// digit groups (space, dash, dot, slash) only.
func digitsOnly(parts []string) bool {
	for _, p := range parts {
		if strings.Trim(p, "0123456789 -./") != "" || strings.Trim(p, " -./") == "" {
			return false
		}
	}
	return true
}

// evenGroups reports whether parts, digits and separators only, write
// digit groups all of one length of 4 digits or more, as a number is cut
// to hide it (4111 1111 …, 41111111 11111111, 4111-1111): numbers of
// other lengths side by side (ports, sizes, timeouts, dates) are not
// read as one.
func evenGroups(parts []string) bool {
	n := 0
	for _, p := range parts {
		for _, g := range strings.FieldsFunc(p, func(r rune) bool { return r < '0' || r > '9' }) {
			if n == 0 {
				n = len(g)
			}
			if len(g) != n || n < 4 {
				return false
			}
		}
	}
	return true
}
