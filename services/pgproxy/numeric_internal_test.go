package pgproxy

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestNumericText: a binary numeric is read as the decimal text
// PostgreSQL writes for it, so the detectors judge the same digits in
// either format.
func TestNumericText(t *testing.T) {
	m := pgtype.NewMap()
	for _, s := range []string{"0", "1", "-1", "1234.5", "4111111111111111", "4111111111111.111", "-0.00001234", "10000", "0.1000", "123456789012345678901234567890.000000001"} {
		var n pgtype.Numeric
		if err := n.Scan(s); err != nil {
			t.Fatal(err)
		}
		b, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(numericText(b)); got != s {
			t.Errorf("numericText(%s) = %q", s, got)
		}
	}
	if numericText([]byte{0, 1}) != nil {
		t.Error("a short numeric was decoded")
	}
}
