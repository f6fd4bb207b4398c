package sshproxy

import (
	"runtime"
	"strings"
	"testing"
)

// A value the shell joins from pieces is replaced, over the words as
// typed, whatever quoting, escapes or expansion split it.
func TestScrubCommandResolvesWords(t *testing.T) {
	for _, line := range []string{
		`echo 4111''1111''1111''1111 >/dev/null`,
		`echo 4111\ 1111\ 1111\ 1111`,
		`echo "41111111""11111111"`,
		`echo 'jane'@'example.com'`,
		`echo jane\@example.com`,
		`echo jane@example"".com`,
		`echo 4111{,}111111111111`,
		`printf '\064\061\061\061\061\061\061\061\061\061\061\061\061\061\061\061'`,
		`echo $'\x34\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31\x31'`,
		`X=41111111; echo ${X}11111111`,
		`printf %s 4111 1111 1111 1111`,
		`echo 4111 1111 1111 1111`,
		`grep -c 4111''1111''1111''1111 /etc/hostname`,
		`sh -c "echo 4111''1111''1111''1111"`,
		`echo 4111''1111''1111''1111 'unterminated`,
		`powershell -EncodedCommand agBhAG4AZQBAAGUAeABhAG0AcABsAGUALgBjAG8AbQA=`,
	} {
		got, found := scrubCommand(line)
		t.Logf("%s => %s", line, got)
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, got)
		if strings.Contains(digits, "41111111") && strings.Contains(digits, "11111111") && !strings.Contains(got, "REDACTED") ||
			strings.Contains(got, "jane") || len(found) == 0 {
			t.Errorf("%s\n recorded as %s (%d found)", line, got, len(found))
		}
	}
	if got, _ := scrubCommand(`grep -c 'jane'@'example.com' f`); got != "grep -c [REDACTED:email] f" {
		t.Errorf("an option next to an address recorded as %s", got)
	}
	for _, line := range []string{"ls -la /tmp", `echo "$HOME/app" done`, "cat file1 file2 | grep -c x"} {
		if got, found := scrubCommand(line); got != line || len(found) != 0 {
			t.Errorf("%s recorded as %s", line, got)
		}
	}
}

// A value the script computes from its own assignments or by arithmetic
// is judged as bash computes it, and every word that holds a part of it
// (the expansion and the assignments it used) is replaced.
func TestScrubCommandComputedValues(t *testing.T) {
	const card = "4112497802890751"
	for _, c := range []struct{ line, gone string }{
		{`a=41124978; b=02890751; echo $a$b`, "41124978"},
		{`a=41124978; b=02890751; echo "$a$b" > /tmp/x`, "02890751"},
		{`a=4112; a+=4978; b=02890751; echo ${a}${b}`, "4978"},
		{`a=41124978; b=$a; c=02890751; echo $b$c`, "41124978"},
		{`export A=41124978 B=02890751; printf '%s\n' "$A$B"`, "41124978"},
		{`echo $((41124978*100000000+2890751))`, "41124978"},
		{`x=41124978; echo $(( x * 100000000 + 2890751 ))`, "41124978"},
		{`u=jane; d=example.com; echo "$u@$d"`, "jane"},
	} {
		got, found := scrubCommand(c.line)
		if strings.Contains(got, c.gone) || len(found) == 0 {
			t.Errorf("%s\n recorded as %s (%d found)", c.line, got, len(found))
		}
	}
	// Unknown variables stay unresolved; known ones holding nothing stay
	// as typed.
	for _, line := range []string{`a=1; b=2; echo $a$b`, `for i in 1 2; do echo $i; done`, `echo "$HOME/app" $((1+2))`} {
		if got, found := scrubCommand(line); got != line || len(found) != 0 {
			t.Errorf("%s recorded as %s", line, got)
		}
	}
	_ = card
}

// Expansions that would build more than maxAssigned bytes are not made
// (a replacement nested in a replacement grows as a power: 114 bytes of
// command took 24 s and 11.8 GiB before the bound), and the word stays
// unresolved.
func TestScrubCommandExpansionBounded(t *testing.T) {
	x71 := strings.Repeat("x", 71)
	for _, line := range []string{
		"a=" + x71 + "; echo ${a//x/${a//x/${a//x/${a//x/${a//x/$a}}}}}",
		"a=" + strings.Repeat("x", 4000) + "; echo ${a//x/$a} ${a//x/$a} ${a//x/$a}",
		"a=" + strings.Repeat("x", 4000) + "; echo " + strings.Repeat("$a", 64),
		"a=" + strings.Repeat("x", 2000) + "; echo ${a//x/" + strings.Repeat("y", 100) + "}",
	} {
		if got, _ := scrubCommand(line); got != line {
			t.Errorf("%.60s… recorded as %.60s…", line, got)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.TotalAlloc
	scrubCommand("a=" + x71 + "; echo ${a//x/${a//x/${a//x/${a//x/${a//x/$a}}}}}")
	runtime.ReadMemStats(&m)
	if n := m.TotalAlloc - before; n > 16<<20 {
		t.Errorf("judging a 114-byte command allocated %d MiB", n>>20)
	}
}

// TestScrubCommandListsEveryValueOfAWord: a word is replaced whole, and
// every value it held is listed for its search digest — not only the
// first (the e-mail below could not be searched for).
func TestScrubCommandListsEveryValueOfAWord(t *testing.T) {
	for _, line := range []string{
		`echo "card 4111 1111 1111 1111 mail jane@example.com"`,
		`sh -c 'echo 4111111111111111; echo jane@example.com'`,
		`printf '%s\n' 'jane@example.com or 4111-1111-1111-1111'`,
	} {
		got, found := scrubCommand(line)
		if strings.Contains(got, "jane") || strings.Contains(got, "4111") {
			t.Errorf("%s recorded as %s", line, got)
		}
		var card, email bool
		for _, f := range found {
			card = card || f.Detector == "credit_card" && strings.Count(f.Value, "1") >= 12
			email = email || f.Detector == "email" && f.Value == "jane@example.com"
		}
		if !card || !email {
			t.Errorf("%s: found %+v, want the card number and the e-mail", line, found)
		}
	}
}
