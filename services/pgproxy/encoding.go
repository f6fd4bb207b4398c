package pgproxy

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// The client's bytes are in its client_encoding, which the server reports
// (at the start and whenever it changes: SET client_encoding, SET NAMES,
// set_config, a role's settings) and converts from before it parses. The
// proxy reads a statement the same way: it judges and records the text
// decoded from the client's encoding (a LATIN1 0xA0 is a no-break space,
// as the server reads it), and forwards the bytes unchanged. Text that is
// all ASCII reads the same in every encoding PostgreSQL accepts from a
// client. An encoding the proxy cannot decode (EUC_TW, JOHAB,
// MULE_INTERNAL, EUC_JIS_2004, SHIFT_JIS_2004), and a statement that is
// not ASCII while one that may change the encoding is still running,
// are refused. Result values are masked as bytes: a mask rule that
// detects values in results needs them in UTF-8, so while one applies
// statements from a client in another encoding are refused.

// clientEncodings maps PostgreSQL's encoding names to their decoders;
// nil stands for no conversion (UTF8, and SQL_ASCII, whose bytes the
// server takes as they are).
var clientEncodings = map[string]encoding.Encoding{
	"UTF8": nil, "SQL_ASCII": nil,
	"LATIN1": charmap.ISO8859_1, "LATIN2": charmap.ISO8859_2, "LATIN3": charmap.ISO8859_3, "LATIN4": charmap.ISO8859_4,
	"LATIN5": charmap.ISO8859_9, "LATIN6": charmap.ISO8859_10, "LATIN7": charmap.ISO8859_13, "LATIN8": charmap.ISO8859_14,
	"LATIN9": charmap.ISO8859_15, "LATIN10": charmap.ISO8859_16,
	"ISO_8859_5": charmap.ISO8859_5, "ISO_8859_6": charmap.ISO8859_6, "ISO_8859_7": charmap.ISO8859_7, "ISO_8859_8": charmap.ISO8859_8,
	"WIN1250": charmap.Windows1250, "WIN1251": charmap.Windows1251, "WIN1252": charmap.Windows1252, "WIN1253": charmap.Windows1253,
	"WIN1254": charmap.Windows1254, "WIN1255": charmap.Windows1255, "WIN1256": charmap.Windows1256, "WIN1257": charmap.Windows1257,
	"WIN1258": charmap.Windows1258, "WIN866": charmap.CodePage866, "WIN874": charmap.Windows874,
	"KOI8R": charmap.KOI8R, "KOI8U": charmap.KOI8U,
	"EUC_JP": japanese.EUCJP, "SJIS": japanese.ShiftJIS,
	"EUC_KR": korean.EUCKR, "UHC": korean.EUCKR,
	"EUC_CN": simplifiedchinese.GBK, "GBK": simplifiedchinese.GBK, "GB18030": simplifiedchinese.GB18030,
	"BIG5": traditionalchinese.Big5,
}

// isUTF8Encoding reports whether name needs no conversion.
func isUTF8Encoding(name string) bool {
	enc, ok := clientEncodings[normEncoding(name)]
	return ok && enc == nil
}

// normEncoding is an encoding name as the map spells it.
func normEncoding(name string) string {
	n := strings.ToUpper(name)
	if n == "UTF-8" || n == "UNICODE" {
		return "UTF8"
	}
	return n
}

// fromClient decodes text in the client encoding name; ok is false for
// an encoding the proxy cannot decode.
func fromClient(name, text string) (string, bool) {
	if isASCII(text) {
		return text, true
	}
	enc, known := clientEncodings[normEncoding(name)]
	if !known {
		return "", false
	}
	if enc == nil {
		return text, true
	}
	out, err := enc.NewDecoder().String(text)
	if err != nil {
		return "", false
	}
	return out, true
}

// toClient encodes UTF-8 text into the client encoding name, characters
// it cannot hold written as ?.
func toClient(name, text string) string {
	if isASCII(text) || !utf8.ValidString(text) {
		return text
	}
	enc := clientEncodings[normEncoding(name)]
	if enc == nil {
		return text
	}
	out, err := encoding.ReplaceUnsupported(enc.NewEncoder()).String(text)
	if err != nil {
		return text
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
