package sshproxy

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// call is one simple command found in a command line.
type call struct {
	name string   // the program, the last element of its path
	args []string // its words after the name, unresolved ones as written
	text string   // name and args joined by spaces
	// opaque: what runs cannot be read from the text (eval, a command in
	// a variable, an interpreter given code, xargs, …); it is judged as
	// an interactive shell.
	opaque bool
	why    string // why it is opaque
}

// maxDepth bounds how deep sh -c '…' inside sh -c '…' is followed.
const maxDepth = 8

// parseCommand parses a command line as the target's shell (bash) would
// and returns every simple command in it: in pipelines, lists,
// subshells, functions, $(…), <(…), and the scripts given to sh -c and
// bash -c.
func parseCommand(line string) ([]call, error) {
	return parseDepth(line, 0)
}

func parseDepth(line string, depth int) ([]call, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("shell scripts nested more than %d deep", maxDepth)
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(line), "")
	if err != nil {
		return nil, err
	}
	var calls []call
	var ferr error
	syntax.Walk(f, func(n syntax.Node) bool {
		if ferr != nil {
			return false
		}
		ce, ok := n.(*syntax.CallExpr)
		if !ok || len(ce.Args) == 0 {
			return true
		}
		words := make([]word, len(ce.Args))
		for i, w := range ce.Args {
			words[i] = resolve(w)
		}
		cs, err := classify(words, depth)
		if err != nil {
			ferr = err
			return false
		}
		calls = append(calls, cs...)
		return true // what $(…) in its words runs is a call of its own
	})
	return calls, ferr
}

// word is a shell word, resolved to the string it stands for when its
// text alone says so.
type word struct {
	s  string
	ok bool // resolved: no expansion can change it
}

func resolve(w *syntax.Word) word {
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			v := p.Value
			// Brace and glob expansion turn such a word into others.
			if strings.ContainsAny(v, "*?[") || strings.Contains(v, "{") && (strings.Contains(v, ",") || strings.Contains(v, "..")) {
				return word{s: source(w)}
			}
			b.WriteString(unescape(v, false))
		case *syntax.SglQuoted:
			if p.Dollar {
				return word{s: source(w)}
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return word{s: source(w)}
				}
				b.WriteString(unescape(l.Value, true))
			}
		default:
			return word{s: source(w)}
		}
	}
	return word{s: b.String(), ok: true}
}

// unescape removes the backslashes bash removes: any unquoted, and
// before $ ` " \ and newline in double quotes.
func unescape(v string, quoted bool) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			next := v[i+1]
			if next == '\n' {
				i++
				continue
			}
			if !quoted || strings.IndexByte("$`\"\\", next) >= 0 {
				b.WriteByte(next)
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

func source(n syntax.Node) string {
	var b strings.Builder
	syntax.NewPrinter().Print(&b, n)
	return b.String()
}

// Programs whose arguments are a command: the command is judged too.
var wrappers = map[string]string{
	// wrapper: its options that take a value
	"sudo": "ugCDhpRrTt", "doas": "uC", "env": "uCS", "nice": "n", "nohup": "", "time": "fo",
	"timeout": "sk", "command": "", "builtin": "", "exec": "a", "stdbuf": "ioe", "ionice": "cnpP",
	"setsid": "", "chrt": "", "taskset": "", "nsenter": "tSG", "unshare": "", "chroot": "", "runuser": "ugl",
}

// Shells: given -c, the script is parsed in turn; otherwise they read
// their commands from stdin or a file, which cannot be judged.
var shells = []string{"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "rbash", "su"}

// Programs that run code or commands the command line does not show.
var opaquePrograms = map[string]string{
	"eval": "eval runs a string built at run time", "source": "a sourced script", ".": "a sourced script",
	"xargs": "xargs runs a command on its input", "parallel": "parallel runs commands from its input",
	"watch": "watch runs a command string", "ssh": "a command on another host", "script": "script runs a shell",
	"expect": "an expect script", "busybox": "busybox runs any applet", "socat": "socat can run programs",
	"nc": "nc can run programs", "ncat": "ncat can run programs", "tmux": "tmux runs a shell", "screen": "screen runs a shell",
	"awk": "an awk program can run commands", "gawk": "an awk program can run commands", "mawk": "an awk program can run commands",
	"nawk": "an awk program can run commands", "vi": "an editor can run a shell", "vim": "an editor can run a shell",
	"less": "less can run a shell", "more": "more can run a shell", "man": "man can run a shell",
	"gdb": "a debugger runs code", "strace": "strace runs a command", "ltrace": "ltrace runs a command",
}

// interpreters run code given on the command line, in a file or on stdin.
var interpreters = []string{"python", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "wish", "Rscript", "julia", "deno", "bun", "osascript", "pwsh", "irb", "jshell", "groovy"}

func isInterpreter(name string) bool {
	for _, p := range interpreters {
		if name == p || strings.HasPrefix(name, p) && strings.Trim(name[len(p):], "0123456789.-") == "" {
			return true
		}
	}
	return false
}

// classify turns the words of one simple command into the calls it
// makes: itself, what a wrapper runs, and what sh -c runs.
func classify(words []word, depth int) ([]call, error) {
	var out []call
	for len(words) > 0 {
		c := call{}
		if !words[0].ok {
			c.name = words[0].s
			c.opaque, c.why = true, "the program is named by an expansion ("+words[0].s+")"
		} else {
			c.name = path.Base(words[0].s)
		}
		for _, w := range words[1:] {
			c.args = append(c.args, w.s)
		}
		c.text = strings.Join(append([]string{c.name}, c.args...), " ")
		if c.opaque {
			return append(out, c), nil
		}
		name, args := c.name, words[1:]
		switch {
		case opaquePrograms[name] != "":
			c.opaque, c.why = true, opaquePrograms[name]
		case isInterpreter(name):
			c.opaque, c.why = true, name+" runs code the command line does not show"
		case name == "find" && slices.ContainsFunc(args, func(w word) bool {
			return slices.Contains([]string{"-exec", "-execdir", "-ok", "-okdir"}, w.s) || !w.ok
		}):
			c.opaque, c.why = true, "find runs a command"
		case slices.Contains(shells, name):
			script, ok, hasC := shellScript(name, args)
			switch {
			case !hasC:
				c.opaque, c.why = true, name+" reads its commands from its input or a file"
			case !ok:
				c.opaque, c.why = true, name+" -c is given a script built at run time"
			default:
				out = append(out, c)
				inner, err := parseDepth(script, depth+1)
				if err != nil {
					return nil, fmt.Errorf("%s -c: %w", name, err)
				}
				return append(out, inner...), nil
			}
		}
		out = append(out, c)
		if c.opaque {
			return out, nil
		}
		opts, isWrapper := wrappers[name]
		if !isWrapper {
			return out, nil
		}
		words = skipWrapper(name, opts, args)
	}
	return out, nil
}

// shellScript finds the script of sh -c SCRIPT (su -c SCRIPT): hasC when
// -c is given, ok when the script is a literal.
func shellScript(name string, args []word) (script string, ok, hasC bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !a.ok {
			if hasC {
				return "", false, true
			}
			continue
		}
		switch {
		case a.s == "-c" || a.s == "--command" || name != "su" && strings.HasPrefix(a.s, "-") && !strings.HasPrefix(a.s, "--") && strings.Contains(a.s, "c"):
			hasC = true
			if i+1 < len(args) {
				if name == "su" || a.s == "-c" || strings.HasSuffix(a.s, "c") {
					return args[i+1].s, args[i+1].ok, true
				}
			}
		case hasC && !strings.HasPrefix(a.s, "-"):
			return a.s, true, true
		}
	}
	return "", false, hasC
}

// skipWrapper drops a wrapper's options (and env's assignments,
// timeout's duration, nice's adjustment) to reach the command it runs.
func skipWrapper(name, opts string, args []word) []word {
	i := 0
	for i < len(args) {
		a := args[i].s
		switch {
		case a == "--":
			return args[i+1:]
		case strings.HasPrefix(a, "-") && len(a) > 1:
			if len(a) == 2 && strings.IndexByte(opts, a[1]) >= 0 {
				i++ // its value
			}
			i++
		case name == "env" && strings.Contains(a, "="):
			i++
		case (name == "timeout" || name == "chrt" || name == "taskset" || name == "chroot") && i == 0:
			i++
		default:
			return args[i:]
		}
	}
	return nil
}
