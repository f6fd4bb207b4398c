package pgproxy

import (
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
)

// scan is pg_query.Scan with the scanner's answer decoded by hand: the
// generic protobuf decoder allocated every token apart and took most of
// the time of scanning a short statement (every pgbench UPDATE and
// INSERT is scanned for numbers split over its constants). The tokens
// are the same (TestScanAgrees); they share one array.
func scan(sql string) (*pg_query.ScanResult, error) {
	b, err := parser.ScanToProtobuf(sql)
	if err != nil {
		return nil, err
	}
	// ScanResult: version (1, varint), tokens (2, ScanToken messages).
	n := 0
	for rest := b; len(rest) > 0; {
		num, typ, l := protowire.ConsumeTag(rest)
		if l < 0 {
			return nil, fmt.Errorf("scan: %w", protowire.ParseError(l))
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[l:])
		if m < 0 {
			return nil, fmt.Errorf("scan: %w", protowire.ParseError(m))
		}
		if num == 2 && typ == protowire.BytesType {
			n++
		}
		rest = rest[l+m:]
	}
	res := &pg_query.ScanResult{Tokens: make([]*pg_query.ScanToken, 0, n)}
	toks := make([]pg_query.ScanToken, n)
	for rest := b; len(rest) > 0; {
		num, typ, l := protowire.ConsumeTag(rest)
		rest = rest[l:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(rest)
			res.Version = int32(v)
			rest = rest[m:]
		case num == 2 && typ == protowire.BytesType:
			msg, m := protowire.ConsumeBytes(rest)
			rest = rest[m:]
			t := &toks[len(res.Tokens)]
			for len(msg) > 0 {
				fn, ft, fl := protowire.ConsumeTag(msg)
				if fl < 0 {
					return nil, fmt.Errorf("scan: %w", protowire.ParseError(fl))
				}
				msg = msg[fl:]
				if ft != protowire.VarintType {
					fm := protowire.ConsumeFieldValue(fn, ft, msg)
					if fm < 0 {
						return nil, fmt.Errorf("scan: %w", protowire.ParseError(fm))
					}
					msg = msg[fm:]
					continue
				}
				v, fm := protowire.ConsumeVarint(msg)
				if fm < 0 {
					return nil, fmt.Errorf("scan: %w", protowire.ParseError(fm))
				}
				msg = msg[fm:]
				switch fn {
				case 1:
					t.Start = int32(v)
				case 2:
					t.End = int32(v)
				case 4:
					t.Token = pg_query.Token(int32(v))
				case 5:
					t.KeywordKind = pg_query.KeywordKind(int32(v))
				}
			}
			res.Tokens = append(res.Tokens, t)
		default:
			rest = rest[protowire.ConsumeFieldValue(num, typ, rest):]
		}
	}
	return res, nil
}
