package pgproxy

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// With standard_conforming_strings off the server reads a backslash in a
// plain string constant ('…') as an escape: 'x\' , ' is one constant, not
// two. The proxy parses with the setting on, as PostgreSQL does by
// default, so it tracks the server's setting (the server reports every
// change with ParameterStatus, whatever made it: SET, set_config, a
// function, ALTER ROLE or DATABASE settings) and judges and records a
// statement as the server will read it:
//
//   - a text without a backslash reads the same either way;
//   - with the setting off, the text is judged and recorded as its
//     standard-conforming equivalent, each plain constant holding a
//     backslash written as the escape string E'…' it is, after checking
//     that the server's parser (run with the setting off) gives that very
//     tree; when it does not, the statement is refused;
//   - while a statement that may change the setting is still running
//     (pipelining), either reading may apply: a text that parses into
//     different statements under the two is refused; otherwise the one
//     reading that parses is used.
//
// escape_string_warning only adds warnings; backslash_quote only makes the
// server refuse \' where the parser accepts it.

// serverReading returns the text the policy judges and the ledger records
// for sql: sql itself, or its standard-conforming equivalent (off: the
// server's setting is off; certain: no statement that could change it is
// still running). why is set when the proxy cannot tell what the server
// will read.
func serverReading(sql string, off, certain bool) (text, why string) {
	if !strings.Contains(sql, `\`) || certain && !off {
		return sql, ""
	}
	offTree, offErr := parseNonStandard(sql)
	var std string
	if offErr == nil {
		var ok bool
		if std, ok = standardEquivalent(sql, offTree); !ok {
			return "", "the statement holds a backslash in a string constant and standard_conforming_strings is off (or may be), " +
				"and the audit proxy cannot read it as the server will: it is refused; write such constants as E'…' strings"
		}
	}
	if certain {
		if offErr != nil {
			return sql, "" // the server refuses it too
		}
		return std, ""
	}
	onTree, onErr := pg.Parse(sql)
	switch {
	case offErr != nil:
		return sql, ""
	case onErr != nil:
		return std, ""
	case sameShape(onTree, offTree, true):
		return sql, ""
	}
	return "", "the statement reads as different statements with standard_conforming_strings on and off, and a statement still running " +
		"may change that setting: the audit proxy cannot tell which the server will run, so it is refused; send it once that statement has completed"
}

// standardEquivalent rewrites sql, read with standard_conforming_strings
// off, into the text that reads the same with it on: every plain string
// constant holding a backslash gets the E prefix. ok says the rewrite
// parses (setting on) into offTree, the server's own reading.
func standardEquivalent(sql string, offTree *pg.ParseResult) (string, bool) {
	var b []byte
	identCont := func(c byte) bool {
		return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
	}
	n := len(sql)
	for i := 0; i < n; {
		c := sql[i]
		switch {
		case c == '-' && i+1 < n && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = n - i
			}
			b = append(b, sql[i:i+j]...)
			i += j
		case c == '/' && i+1 < n && sql[i+1] == '*':
			depth, j := 1, i+2
			for j < n && depth > 0 {
				switch {
				case sql[j] == '/' && j+1 < n && sql[j+1] == '*':
					depth++
					j += 2
				case sql[j] == '*' && j+1 < n && sql[j+1] == '/':
					depth--
					j += 2
				default:
					j++
				}
			}
			b = append(b, sql[i:j]...)
			i = j
		case c == '"':
			j := i + 1
			for j < n {
				if sql[j] == '"' {
					if j+1 < n && sql[j+1] == '"' {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			b = append(b, sql[i:j]...)
			i = j
		case c == '$' && (i == 0 || !identCont(sql[i-1])):
			// A dollar quote $tag$…$tag$, or a parameter $1.
			j := i + 1
			for j < n && identCont(sql[j]) && sql[j] != '$' {
				j++
			}
			if j < n && sql[j] == '$' && (j == i+1 || !(sql[i+1] >= '0' && sql[i+1] <= '9')) {
				tag := sql[i : j+1]
				end := strings.Index(sql[j+1:], tag)
				if end < 0 {
					b = append(b, sql[i:]...)
					i = n
					break
				}
				stop := j + 1 + end + len(tag)
				b = append(b, sql[i:stop]...)
				i = stop
				break
			}
			b = append(b, sql[i:j]...)
			i = j
		case c == '\'':
			// A string constant: its prefix (E, B, X, N, U&) is what comes
			// right before the quote when it starts the token.
			escapes, plain, national := true, true, false
			if i > 0 {
				p := sql[i-1]
				startsToken := i < 2 || !identCont(sql[i-2])
				switch {
				case (p == 'e' || p == 'E') && startsToken:
					plain = false
				case (p == 'b' || p == 'B' || p == 'x' || p == 'X') && startsToken:
					escapes, plain = false, false
				case p == '&' && i >= 2 && (sql[i-2] == 'u' || sql[i-2] == 'U') && (i < 3 || !identCont(sql[i-3])):
					escapes, plain = false, false
				case (p == 'n' || p == 'N') && startsToken:
					national = true // N'…' is NCHAR '…'
				}
			}
			j := scanQuoted(sql, i, escapes)
			// Continued on a following line: 'a'\n'b' is one constant.
			for {
				k := j
				nl := false
				for k < n && strings.IndexByte(" \t\n\r\f\v", sql[k]) >= 0 {
					nl = nl || sql[k] == '\n' || sql[k] == '\r'
					k++
				}
				if !nl || k >= n || sql[k] != '\'' {
					break
				}
				j = scanQuoted(sql, k, escapes)
			}
			lit := sql[i:j]
			if plain && strings.Contains(lit, `\`) {
				switch {
				case national:
					b = append(b[:len(b)-1], "NCHAR E"...)
				case i > 0 && identCont(sql[i-1]):
					b = append(b, " E"...) // a type name before it: int'1'
				default:
					b = append(b, 'E')
				}
			}
			b = append(b, lit...)
			i = j
		default:
			b = append(b, c)
			i++
		}
	}
	std := string(b)
	tree, err := pg.Parse(std)
	if err != nil {
		return "", false
	}
	return std, sameShape(tree, offTree, false)
}

// scanQuoted returns the offset just past the quoted constant starting at
// sql[i] (a quote); with escapes a backslash escapes the next byte.
func scanQuoted(sql string, i int, escapes bool) int {
	j := i + 1
	for j < len(sql) {
		switch sql[j] {
		case '\\':
			if escapes {
				j += 2
				continue
			}
		case '\'':
			if j+1 < len(sql) && sql[j+1] == '\'' {
				j += 2
				continue
			}
			return j + 1
		}
		j++
	}
	return len(sql)
}

// sameShape reports whether two parse trees are the same but for
// locations (and, with anyStrings, the values of string constants).
func sameShape(a, b *pg.ParseResult, anyStrings bool) bool {
	a, b = proto.Clone(a).(*pg.ParseResult), proto.Clone(b).(*pg.ParseResult)
	for _, t := range []*pg.ParseResult{a, b} {
		visit(t.ProtoReflect(), func(m protoreflect.Message) bool {
			if c, ok := m.Interface().(*pg.A_Const); ok && anyStrings && c.GetSval() != nil {
				c.Val = &pg.A_Const_Sval{Sval: &pg.String{}}
			}
			fields := m.Descriptor().Fields()
			for i := range fields.Len() {
				fd := fields.Get(i)
				if name := string(fd.Name()); fd.Kind() == protoreflect.Int32Kind && !fd.IsList() &&
					(strings.HasSuffix(name, "location") || name == "stmt_len") {
					m.Clear(fd)
				}
			}
			return true
		})
	}
	return proto.Equal(a, b)
}

// reading is serverReading for the session: its setting as the server
// last reported it, certain when no statement is still running (the
// server reports a change before the statement that made it completes).
func (s *session) reading(sql string, q *inflight) (text, why string) {
	if len(sql) > MaxStatement {
		return sql, ""
	}
	certain := q.empty()
	enc := s.encoding()
	if !isASCII(sql) {
		if !certain {
			return "", "the statement is not ASCII, and a statement still running may change client_encoding: the audit proxy cannot tell how the server " +
				"will read it, so it is refused; send it once the statements before it have completed"
		}
		dec, ok := fromClient(enc, sql)
		if !ok {
			return "", fmt.Sprintf("client_encoding %s is not one the audit proxy can read (or the statement is not valid in it), so it cannot judge or record the statement; "+
				"set client_encoding to UTF8", enc)
		}
		sql = dec
	}
	if !isUTF8Encoding(enc) && s.pol.hasDetectors() && !settingOnly(sql) {
		return "", fmt.Sprintf("client_encoding is %s, and this policy masks values it detects in results, which it reads as UTF-8; set client_encoding to UTF8", enc)
	}
	return serverReading(sql, s.scsOff.Load(), certain)
}

// encoding is the session's client_encoding, as the server last
// reported it ("" before it has).
func (s *session) encoding() string {
	if e, ok := s.clientEnc.Load().(string); ok {
		return e
	}
	return ""
}

// paramsRead returns bind parameters as the policy judges and records
// them: text ones decoded from the client encoding. One the proxy cannot
// decode for sure (an encoding it cannot read, or a statement that may
// change it still running) is marked binary, so it is recorded by its
// digest, never as text.
func (s *session) paramsRead(values [][]byte, formats []int16, q *inflight) ([][]byte, []int16) {
	enc, certain := s.encoding(), q.empty()
	if isUTF8Encoding(enc) && certain {
		return values, formats
	}
	outV, outF := make([][]byte, len(values)), make([]int16, len(values))
	for i, v := range values {
		outV[i] = v
		if len(formats) == 1 && formats[0] == 1 || i < len(formats) && formats[i] == 1 {
			outF[i] = 1
			continue
		}
		if v == nil || isASCII(string(v)) {
			continue
		}
		if dec, ok := fromClient(enc, string(v)); ok && certain {
			outV[i] = []byte(dec)
		} else {
			outF[i] = 1
		}
	}
	return outV, outF
}

// errorRead decodes the texts of a server error or notice from the
// client encoding, for the detectors and the ledger.
func (s *session) errorRead(e *pgproto3.ErrorResponse) {
	enc := s.encoding()
	if isUTF8Encoding(enc) {
		return
	}
	for _, f := range []*string{&e.Message, &e.Detail, &e.Hint, &e.Where, &e.InternalQuery} {
		if dec, ok := fromClient(enc, *f); ok {
			*f = dec
		} else {
			*f = strings.ToValidUTF8(*f, "?")
		}
	}
}

// errorWrite encodes the texts of an error or notice errorRead decoded
// back into the client encoding.
func (s *session) errorWrite(e *pgproto3.ErrorResponse) {
	enc := s.encoding()
	if isUTF8Encoding(enc) {
		return
	}
	for _, f := range []*string{&e.Message, &e.Detail, &e.Hint, &e.Where, &e.InternalQuery} {
		*f = toClient(enc, *f)
	}
}

// setting notes a run-time parameter the server reports (at the start
// of the session and whenever it changes).
func (s *session) setting(name, value string) {
	switch name {
	case "standard_conforming_strings":
		s.scsOff.Store(value != "on")
	case "client_encoding":
		s.clientEnc.Store(value)
	}
}

// settingOnly reports whether sql only sets parameters or controls the
// transaction: statements that return no values (SET client_encoding TO
// UTF8 among them).
func settingOnly(sql string) bool {
	a := analyze(sql)
	if a.err != nil || len(a.kinds) == 0 {
		return false
	}
	for k := range a.kinds {
		if k != "SET" && k != "TRANSACTION" {
			return false
		}
	}
	return true
}
