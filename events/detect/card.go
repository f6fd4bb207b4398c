package detect

import "bytes"

// Cards inside longer numbers. A card number is often written next to
// other digits: a reference before it, a sequence number or expiry after
// it, all in one run ("ref 12 4111 1111 1111 1111 99",
// "411111111111111112345"). cardsIn looks for one inside such a run, by
// a stricter rule than a whole value gets, because a long numeric id
// holds many windows of 13–19 digits and one in ten passes Luhn:
//   - within a run written in groups, windows of whole groups of 3 to 6
//     digits (4-4-4-4, 4-6-5, 4-4-4-4-3) or one group alone;
//   - within one unbroken group of 14 to 27 digits, a window at its
//     start or its end, the rest no longer than an expiry date and a
//     security code (maxAround); a longer group is an identifier;
//
// and a window is a card number only when it passes Luhn and its length
// is one the scheme of its issuer prefix issues (issued). The rate at
// which random numeric ids match is measured in TestCardFalsePositives
// and stated in docs/FORMAT.md §1.4.

// issued reports whether the digits d (ASCII) start with the issuer
// prefix of a card scheme that issues numbers of len(d) digits. The
// prefixes are the IIN ranges of ISO/IEC 7812 as the schemes publish
// them, gathered in
// https://en.wikipedia.org/wiki/Payment_card_number#Issuer_identification_number_(IIN)
// (read December 2026).
func issued(d []byte) bool {
	n := len(d)
	if n < 13 || n > 19 {
		return false
	}
	p := func(k int) int {
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	p2, p3, p4 := p(2), p(3), p(4)
	switch {
	case d[0] == '4': // Visa, and Elo's 4011, 4312, 4389, 4514, 4576 ranges
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55 || p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p4 >= 2200 && p4 <= 2204: // Mir
		return n >= 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011 || p3 >= 644 && p3 <= 649 || p2 == 65: // Discover; RuPay and Elo 65, Verve 6500
		return n >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p3 >= 300 && p3 <= 305 || p2 == 36 || p2 == 38 || p2 == 39: // Diners Club
		return n >= 14
	case p2 == 62: // UnionPay; Elo 627780
		return n >= 16
	case p4 == 5018 || p4 == 5020 || p4 == 5038 || p4 == 5893 || p4 == 6304 || p4 == 6759 || p4 >= 6761 && p4 <= 6763: // Maestro
		return true
	case p4 == 5060 || p4 == 5061 || p4 == 5078 || p4 == 5079: // Verve 506099–506198, 507865–507964
		return n >= 16
	case p2 == 60 || p2 == 81 || p2 == 82 || p3 == 508: // RuPay
		return n == 16
	case p4 == 9792: // Troy
		return n == 16
	case p4 == 5041 || p4 == 5066 || p4 == 5067 || p3 == 509 || p4 == 6362 || p4 == 6363: // Elo
		return n == 16
	}
	return false
}

// uatp reports whether the digits d (ASCII) are a UATP number's length
// and prefix: 15 digits starting with 1. It is judged for a whole value
// only, never as a window of a longer run: timestamps in microseconds
// and nanoseconds and Snowflake-style ids start with 1 too.
func uatp(d []byte) bool { return len(d) == 15 && d[0] == '1' }

// luhn reports whether the digits d (ASCII) pass the Luhn check.
func luhn(d []byte) bool {
	sum := 0
	for i := range d {
		c := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			if c *= 2; c > 9 {
				c -= 9
			}
		}
		sum += c
	}
	return sum%10 == 0
}

// cardsIn returns the card numbers inside run, a run of digits broken
// only by spaces and dashes that starts and ends with a digit, as
// [lo, hi) offsets into run, in order and apart.
func cardsIn(run []byte) [][2]int {
	type group struct{ lo, hi int }
	var groups []group
	for i := 0; i < len(run); {
		if !isDigit(run[i]) {
			i++
			continue
		}
		j := i
		for j < len(run) && isDigit(run[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	var found [][2]int
	var digits [19]byte
	for i := 0; i < len(groups); i++ {
		// The longest window of whole groups starting at group i.
		last, n := i-1, 0
		for j := i; j < len(groups); j++ {
			w := groups[j].hi - groups[j].lo
			if n+w > 19 || j > i && (w < 3 || w > 6 || groups[i].hi-groups[i].lo < 3 || groups[i].hi-groups[i].lo > 6) {
				break
			}
			n, last = n+w, j
		}
		matched := false
		for j := last; j >= i && !matched; j-- {
			d := digits[:0]
			for k := i; k <= j; k++ {
				d = append(d, run[groups[k].lo:groups[k].hi]...)
			}
			if j > i && groups[i].hi-groups[i].lo < 4 && bytes.ContainsAny(run[groups[i].hi:groups[j].lo], "\n\r") {
				continue // over lines, as windows reads chains (lineGroups)
			}
			if issued(d) && luhn(d) {
				found = append(found, [2]int{groups[i].lo, groups[j].hi})
				i, matched = j, true
			}
		}
		if matched {
			continue
		}
		// A card number at either end of one unbroken group, the rest
		// no longer than an expiry date and a security code.
		g := groups[i]
		if n := g.hi - g.lo; n < 14 || n > 19+maxAround {
			continue
		}
		if w, ok := cardAt(run[g.lo:g.hi]); ok {
			found = append(found, [2]int{g.lo + w[0], g.lo + w[1]})
		}
	}
	return found
}

// maxAround is how many digits an unbroken run may hold besides a card
// number for cardsIn to look for one at its start or end.
const maxAround = 8

// cardAt returns the longest card number at the start of d, else at its
// end, d all digits.
func cardAt(d []byte) ([2]int, bool) {
	for n := min(19, len(d)-1); n >= 13; n-- {
		if len(d)-n <= maxAround && issued(d[:n]) && luhn(d[:n]) {
			return [2]int{0, n}, true
		}
	}
	for n := min(19, len(d)-1); n >= 13; n-- {
		if len(d)-n <= maxAround && issued(d[len(d)-n:]) && luhn(d[len(d)-n:]) {
			return [2]int{len(d) - n, len(d)}, true
		}
	}
	return [2]int{}, false
}
