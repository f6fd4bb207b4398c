package events

import (
	"os"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	ev, err := os.ReadFile("testdata/valid/full.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(ev); err != nil {
			b.Fatal(err)
		}
	}
}
