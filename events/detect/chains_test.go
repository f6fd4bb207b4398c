package detect

import (
	"strings"
	"testing"
)

// Forms a third review found sealed in clear (issue 24: L4, L5, L7, L8,
// L9), as the attacker wrote them and in variants, and ordinary text
// that must stay as it is: digit chains with any short separator or one
// letter (chains.go), numbers in other notations, encodings of bytes
// (printable runs, UTF-16 and UTF-32, gzip, base32, stacked base64,
// glued base64 at any alignment, hex with separators), text escapes
// (quoted-printable, UTF-7, %u, octal, CSS, \u{}, \U), and e-mail, SSN
// and phone forms. Each value is replaced over the characters as
// written, MayHold says it may hold one, and the rest stays.
func TestScrubFindsThirdReviewForms(t *testing.T) {
	for _, c := range thirdReviewForms {
		got, counts := Scrub(c.in)
		if got != c.want {
			t.Errorf("Scrub(%q) = %q, want %q", c.in, got, c.want)
		}
		n := strings.Count(c.want, "[REDACTED:")
		if sum(counts) != n {
			t.Errorf("Scrub(%q) counts %v, want %d in all", c.in, counts, n)
		}
		if n > 0 && !MayHold(c.in) {
			t.Errorf("MayHold(%q) = false", c.in)
		}
	}
}

var thirdReviewForms = []struct{ in, want string }{
	{"DROP TABLE IF EXISTS zz_49737791_39928240", "DROP TABLE IF EXISTS zz_[REDACTED:credit_card]"},
	{"LISTEN c_48465145_30278563", "LISTEN c_[REDACTED:credit_card]"},
	{"NOTIFY ch, '43458301x66848974'", "NOTIFY ch, '[REDACTED:credit_card]'"},
	{"GET /q/47993745_76039461", "GET /q/[REDACTED:credit_card]"},
	{"touch /tmp/f_47169833_40267735", "touch /tmp/f_[REDACTED:credit_card]"},
	{"4084|||7151|||3173|||3952", "[REDACTED:credit_card]"},
	{"[\"4050\", \"3737\", \"3179\", \"5441\"]", "[\"[REDACTED:credit_card]\"]"},
	{"4.3.9.8.2.5.9.7.9.1.9.0.7.4.8.2", "[REDACTED:credit_card]"},
	{"43:98:25:97:91:90:74:82", "[REDACTED:credit_card]"},
	{"deadbeef4189205607282662", "deadbeef[REDACTED:credit_card]"},
	{"4649167703576393123456789012", "[REDACTED:credit_card]123456789012"},
	{"46190046-4112-1287-abcd-ef0123456789", "[REDACTED:credit_card]-abcd-ef0123456789"},
	{"a43982597b91907482", "a[REDACTED:credit_card]"},
	{"4398x2597x9190x7482", "[REDACTED:credit_card]"},
	{"VALUES ('43982597'),('91907482')", "VALUES ('[REDACTED:credit_card]')"},
	{"4398); (2597); (9190); (7482", "[REDACTED:credit_card]"},
	{"acctDE89370400440532013000", "acct[REDACTED:iban]"},
	{"⒋⒊⒐⒏⒉⒌⒐⒎⒐⒈⒐0.⒎⒋⒏⒉", "[REDACTED:credit_card]"},
	{"⑷⑶⑼⑻⑵⑸⑼⑺⑼⑴⑼(0)⑺⑷⑻⑵", "[REDACTED:credit_card]"},
	{"四三九八二五九七九一九〇七四八二", "[REDACTED:credit_card]"},
	{"四三九八二五九七九一九零七四八二", "[REDACTED:credit_card]"},
	{"４３９８_２５９７_９１９０_７４８２", "[REDACTED:credit_card]"},
	{"٤٣٩٨|٢٥٩٧|٩١٩٠|٧٤٨٢", "[REDACTED:credit_card]"},
	{"4398\\n2597\\n9190\\n7482", "[REDACTED:credit_card]"},
	{"SELECT x'e3e8f67cf59a7'::bit(64)::bigint", "SELECT x'[REDACTED:credit_card]'::bit(64)::bigint"},
	{"SELECT B'10000001101100101000001111110110010111001111101111101'::bigint", "SELECT B'[REDACTED:credit_card]'::bigint"},
	{"SELECT ('x'||lpad('f391b91c4c956',16,'0'))::bit(64)::bigint", "SELECT ('x'||lpad('[REDACTED:credit_card]',16,'0'))::bit(64)::bigint"},
	{"SELECT '4,793,484,607,257,143'::money", "SELECT '[REDACTED:credit_card]'::money"},
	{"GET /q?amt=4,148,530,892,914,525", "GET /q?amt=[REDACTED:credit_card]"},
	{"?c=0xf53ead470d756", "?c=[REDACTED:credit_card]"},
	{"?c=4.103571629687250e+15", "?c=[REDACTED:credit_card]"},
	{"?c=4.10357162968725E15", "?c=[REDACTED:credit_card]"},
	{"printf \"%d\\n\" 0x10bd9892785d7c", "printf \"%d\\n\" [REDACTED:credit_card]"},
	{"card=0xFA031A886CA9A", "card=[REDACTED:credit_card]"},
	{"fc821b2e0cab6", "[REDACTED:credit_card]"},
	{"SELECT x'000e3e8f67cf59a7'::bit(64)::bigint", "SELECT x'[REDACTED:credit_card]'::bit(64)::bigint"},
	{"printf %x: 0000000fc821b2e0cab6", "printf %x: [REDACTED:credit_card]"},
	{"FC821B2E0CAB6", "[REDACTED:credit_card]"},
	{"Fc821B2e0cAb6", "[REDACTED:credit_card]"},
	{"0o175003065041545232", "[REDACTED:credit_card]"},
	{"0b1111101000000011000110101000100001101100101010011010", "[REDACTED:credit_card]"},
	{"GQYDGNZYGM4TQNRRGE4TANJSHAFA====", "[REDACTED:credit_card]"},
	{"34:33:39:38:32:35:39:37:39:31:39:30:37:34:38:32", "[REDACTED:credit_card]"},
	{"t=CiFjaHR0cHByb3RvYjY0cS53eHFoYXRAZXhhbXBsZS5vcmcQAQ==", "t=[REDACTED:email]"},
	{"H4sIAAAAAAACAzMxtrQwMrU0tzS0NDA3sTACAH8vP7QQAAAA", "[REDACTED:credit_card]"},
	{"WVcxR2RWcFROWGxpTWxVelVVZFdORmxYTVhkaVIxVjFXVEk1ZEE9PQ==", "[REDACTED:email]"},
	{"AGoAYQBuAGUALgByAG8AZQA3AEAAZQB4AGEAbQBwAGwAZQAuAGMAbwBt", "[REDACTED:email]"},
	{"agAAAGEAAABuAAAAZQAAAC4AAAByAAAAbwAAAGUAAAA3AAAAQAAAAGUAAAB4AAAAYQAAAG0AAABwAAAAbAAAAGUAAAAuAAAAYwAAAG8AAABtAAAA", "[REDACTED:email]"},
	{"bvptZXJvIDQzOTgyNTk3OTE5MDc0ODI=", "[REDACTED:credit_card]"},
	{"AAAAAAeHhqYW5lLnJvZTdAZXhhbXBsZS5jb20=", "[REDACTED:email]"},
	{"AAAAAeHlqYW5lLnJvZTdAZXhhbXBsZS5jb20=", "[REDACTED:email]"},
	{"AAE0Mzk4MjU5NzkxOTA3NDgy", "[REDACTED:credit_card]"},
	{"6a0061006e0065002e0072006f006500370040006500780061006d0070006c0065002e0063006f006d00", "[REDACTED:email]"},
	{"006a0061006e0065002e0072006f006500370040006500780061006d0070006c0065002e0063006f006d", "[REDACTED:email]"},
	{"6a:61:6e:65:2e:72:6f:65:37:40:65:78:61:6d:70:6c:65:2e:63:6f:6d", "[REDACTED:email]"},
	{"6A 61 6E 65 2E 72 6F 65 37 40 65 78 61 6D 70 6C 65 2E 63 6F 6D", "[REDACTED:email]"},
	{"6A616E652E726f6537406578616d706c652e636f6d", "[REDACTED:email]"},
	{"0x6a616e652e726f6537406578616d706c652e636f6d", "[REDACTED:email]"},
	{"NJQW4ZJOOJXWKN2AMV4GC3LQNRSS4Y3PNU======", "[REDACTED:email]"},
	{"njqw4zjoojxwkn2amv4gc3lqnrss4y3pnu", "[REDACTED:email]"},
	{"echo MNZXG2DCGMZC44LXMVZHI6KAMV4GC3LQNRSS433SM4====== | base32 -d", "echo [REDACTED:email] | base32 -d"},
	{"m=chttpqppath.jjakgt%3D40example.org", "m=[REDACTED:email]"},
	{"cpgxqp.thfkxf=40example.org", "[REDACTED:email]"},
	{"=34=33=39=38=32=35=39=37=39=31=39=30=37=34=38=32", "[REDACTED:credit_card]"},
	{"jane.roe7+AEA-example.com", "[REDACTED:email]"},
	{"jane.roe7%u0040example.com", "[REDACTED:email]"},
	{"jane.roe7\\100example.com", "[REDACTED:email]"},
	{"jane.roe7\\40 example.com", "[REDACTED:email]"},
	{"jane.roe7\\u{40}example.com", "[REDACTED:email]"},
	{"jane.roe7\\U00000040example.com", "[REDACTED:email]"},
	{"\\064\\063\\071\\070\\062\\065\\071\\067\\071\\061\\071\\060\\067\\064\\070\\062", "[REDACTED:credit_card]"},
	{"q=jane.roe7%2525252540example.com", "q=[REDACTED:email]"},
	{"ch2comment.kuwyzd(x)@example.org", "[REDACTED:email]"},
	{"to jane@(mail)example.org now", "to [REDACTED:email] now"},
	{"jane.roe7@localhost", "[REDACTED:email]"},
	{"mail root@LOCALHOST.", "mail [REDACTED:email]."},
	{"jane@192.168.1.1", "[REDACTED:email]"},
	{"219 09 9999", "[REDACTED:us_ssn]"},
	{"219.09.9999", "[REDACTED:us_ssn]"},
	{"ssn 466265140", "ssn [REDACTED:us_ssn]"},
	{"SSN: 466265140.", "SSN: [REDACTED:us_ssn]."},
	{"social security number is 466-26-5140", "social security number is [REDACTED:us_ssn]"},
	{"Social_Security_No#466265140", "Social_Security_No#[REDACTED:us_ssn]"},
	{"(513) 555-3693", "[REDACTED:phone]"},
	{"call 513-555-3693 now", "call [REDACTED:phone] now"},
	{"call 513.555.3693", "call [REDACTED:phone]"},
	{"tel +1 513-555-3693", "tel [REDACTED:phone]"},
	{"(513)555-3693", "[REDACTED:phone]"},
	{"id 466265140", "id 466265140"},
	{"219 09 99991", "219 09 99991"},
	{"pi 3.14159265358979", "pi 3.14159265358979"},
	{"at 06.12.2026 19.41.13", "at 06.12.2026 19.41.13"},
	{"hosts 10.0.0.1 10.0.0.2 10.0.0.3", "hosts 10.0.0.1 10.0.0.2 10.0.0.3"},
	{"v1.2.3", "v1.2.3"},
	{"git abc1234 def5678", "git abc1234 def5678"},
	{"commit 5f3e1d2", "commit 5f3e1d2"},
	{"x=10 AND y=20", "x=10 AND y=20"},
	{"a+b-c", "a+b-c"},
	{"see 000-00-0000", "see 000-00-0000"},
	{"ssn 000000000", "ssn 000000000"},
	{"ssn 912345678", "ssn 912345678"},
	{"(555) 123", "(555) 123"},
	{"123-456-7890", "123-456-7890"},
	{"jane@host", "jane@host"},
	{"version 2.0e+1", "version 2.0e+1"},
	{"ratio 1.5e-3", "ratio 1.5e-3"},
	{"x=40", "x=40"},
	{"C:\\dev\\abc", "C:\\dev\\abc"},
}
