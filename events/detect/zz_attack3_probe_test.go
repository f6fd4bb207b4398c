package detect

import (
	"bufio"
	"fmt"
	"os"
	"testing"
)

// Reads lines from $PROBE and prints whether Scrub changes each.
func TestAttack3Probe(t *testing.T) {
	f, err := os.Open(os.Getenv("PROBE"))
	if err != nil {
		t.Skip()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		out, counts := Scrub(line)
		status := "LEAK"
		if out != line {
			status = "held"
		}
		fmt.Printf("%s\t%q\t=> %q %v\n", status, line, out, counts)
	}
}
