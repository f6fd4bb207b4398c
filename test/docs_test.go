package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The README is the page a newcomer reads first: it must fit on a screen or
// two, and everything else lives in docs/ behind links that work.
const readmeMaxLines = 200

func TestReadmeShort(t *testing.T) {
	lines := readLines(t, "../README.md")
	if len(lines) > readmeMaxLines {
		t.Errorf("README.md has %d lines, want at most %d: move the detail into docs/", len(lines), readmeMaxLines)
	}
}

// TestReadmeTestCommandIsCI holds the README's test command and the last
// command of .ci/run to the same text, so what the README promises is what
// CI runs.
func TestReadmeTestCommandIsCI(t *testing.T) {
	var readme string
	for _, l := range fenced(readLines(t, "../README.md")) {
		if strings.HasPrefix(l.text, "go test ") {
			readme = stripComment(l.text)
			break
		}
	}
	if readme == "" {
		t.Fatal("README.md: no `go test` command in a code block")
	}
	var last string
	for _, l := range readLines(t, "../.ci/run") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			last = l
		}
	}
	if readme != last {
		t.Errorf("README's test command is %q, but the last command of .ci/run is %q", readme, last)
	}
}

// TestDocLinks checks every relative link in README.md and docs/*.md: the
// file must exist and an #anchor must be a heading of the target, as GitHub
// names headings.
func TestDocLinks(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../README.md"}, files...)
	anchors := map[string]map[string]bool{} // file → its anchors, read once
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := headingAnchors(readLines(t, path))
		anchors[path] = a
		return a
	}
	checked := 0
	for _, file := range files {
		for _, l := range links(readLines(t, file)) {
			target := l.target
			if i := strings.IndexAny(target, " \t"); i >= 0 { // [x](path "title")
				target = target[:i]
			}
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			where := fmt.Sprintf("%s:%d: link %q", strings.TrimPrefix(file, "../"), l.line, l.target)
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s: %s does not exist", where, strings.TrimPrefix(resolved, "../"))
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(resolved, ".md") {
				t.Errorf("%s: an anchor into a file that is not Markdown", where)
				continue
			}
			if !anchorsOf(resolved)[anchor] {
				t.Errorf("%s: no heading in %s has the anchor #%s", where, strings.TrimPrefix(resolved, "../"), anchor)
			}
		}
	}
	if checked == 0 {
		t.Error("no relative link found in README.md or docs/*.md: is the parser broken?")
	}
}

func TestHeadingAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"Trust boundaries: who may do what, and what the log proves": "trust-boundaries-who-may-do-what-and-what-the-log-proves",
		"`auditledger serve --config FILE [--new-log]`":              "auditledger-serve---config-file---new-log",
		"Data flow: how an event travels, and what \"stored\" means": "data-flow-how-an-event-travels-and-what-stored-means",
		"The read API":                                     "the-read-api",
		"Group commit: the choices, measured":              "group-commit-the-choices-measured",
		"[Linked](FORMAT.md) *emphasis* and snake_case_id": "linked-emphasis-and-snake_case_id",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

type line struct {
	n    int
	text string
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return lines
}

// fenced returns the lines inside ``` code blocks; prose returns the others.
func fenced(lines []string) []line { return split(lines, true) }
func prose(lines []string) []line  { return split(lines, false) }

func split(lines []string, inside bool) []line {
	var out []line
	in := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if in == inside {
			out = append(out, line{i + 1, l})
		}
	}
	return out
}

func stripComment(cmd string) string {
	if i := strings.Index(cmd, " #"); i >= 0 {
		cmd = cmd[:i]
	}
	return strings.TrimSpace(cmd)
}

var (
	inlineCode = regexp.MustCompile("`[^`]*`")
	inlineLink = regexp.MustCompile(`\]\(([^()\s]+(?:\s+"[^"]*")?)\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+(\S+)`)
)

type link struct {
	line   int
	target string
}

// links finds inline and reference links in prose, leaving code alone.
func links(lines []string) []link {
	var out []link
	for _, l := range prose(lines) {
		text := inlineCode.ReplaceAllString(l.text, "")
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			out = append(out, link{l.n, m[1]})
		}
		if m := refLink.FindStringSubmatch(text); m != nil {
			out = append(out, link{l.n, m[1]})
		}
	}
	return out
}

var (
	atxHeading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	linkText   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// headingAnchors names each heading as GitHub does, numbering repeats
// (-1, -2, …).
func headingAnchors(lines []string) map[string]bool {
	seen := map[string]int{}
	out := map[string]bool{}
	for _, l := range prose(lines) {
		m := atxHeading.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		a := anchor(m[1])
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// anchor is GitHub's heading slug: the text without markup, lower-cased,
// every character but letters, digits, '-', '_' and spaces dropped, and
// spaces made hyphens.
func anchor(heading string) string {
	heading = linkText.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
