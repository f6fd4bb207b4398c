package sshproxy

import (
	"slices"
	"strings"
	"testing"
)

// Every simple command is found, resolved as bash would resolve it; what
// cannot be resolved is marked opaque (judged as a shell); words that are
// only arguments are never taken for commands.
func TestParseCommand(t *testing.T) {
	for _, c := range []struct {
		line   string
		names  []string // the programs, in order; "!" marks an opaque one
		parses bool
	}{
		{"echo touch rm", []string{"echo"}, true},
		{"grep -r 'rm -rf' /srv | wc -l", []string{"grep", "wc"}, true},
		{"ls; rm -f x && echo done || true", []string{"ls", "rm", "echo", "true"}, true},
		{"echo $(id -u) `whoami`", []string{"echo", "id", "whoami"}, true},
		{"diff <(sort a) <(sort b)", []string{"diff", "sort", "sort"}, true},
		{"bash -c 'cd /tmp; make'", []string{"bash", "cd", "make"}, true},
		{"sh -ec \"apt-get install -y x\"", []string{"sh", "apt-get"}, true},
		{"su - root -c 'systemctl restart app'", []string{"su", "systemctl"}, true},
		{"sudo -u deploy -- env A=1 nice -n 5 /usr/bin/make install", []string{"sudo", "env", "nice", "make"}, true},
		{"timeout 5 curl x", []string{"timeout", "curl"}, true},
		{"X=1 Y=2 printenv X", []string{"printenv"}, true},
		{"f() { rm x; }; f", []string{"rm", "f"}, true},
		{"'r'\"m\" x; r\\m y", []string{"rm", "rm"}, true},
		{"if test -f x; then cat x; fi", []string{"test", "cat"}, true},
		{"for i in 1 2; do echo $i; done", []string{"echo"}, true},
		{"$CMD x", []string{"!"}, true},
		{"${SHELL} -i", []string{"!"}, true},
		{"eval ls", []string{"!eval"}, true},
		{"python3 -c 'print(1)'", []string{"!python3"}, true},
		{"perl -e 1", []string{"!perl"}, true},
		{"bash", []string{"!bash"}, true},
		{"bash script.sh", []string{"!bash"}, true},
		{"bash -c \"$X\"", []string{"!bash"}, true},
		{"find . -name x -exec rm {} ;", []string{"!find"}, true},
		{"find . -name '*.go'", []string{"find"}, true},
		{"ls | xargs rm", []string{"ls", "!xargs"}, true},
		{"ssh other rm x", []string{"!ssh"}, true},
		{"/bin/r? x", []string{"!"}, true},
		{"{rm,x}", []string{"!"}, true},
		{"echo 'open", nil, false},
		{"bash -c 'echo \"open'", nil, false},
	} {
		calls, err := parseCommand(c.line)
		if (err == nil) != c.parses {
			t.Errorf("%s: err %v", c.line, err)
			continue
		}
		var names []string
		for _, k := range calls {
			n := k.name
			if k.opaque {
				n = "!"
				if !strings.ContainsAny(k.name, "$/{") {
					n += k.name
				}
			}
			names = append(names, n)
		}
		if !slices.Equal(names, c.names) {
			t.Errorf("%s: %v, want %v", c.line, names, c.names)
		}
	}
}

// A rule on a program never matches it as an argument, and a shell rule
// matches every opaque call.
func TestJudge(t *testing.T) {
	p, err := ParsePolicy("p.yaml", []byte(`version: 2
deny:
  - id: no-rm
    commands: [rm]
    reason: no
  - id: web-only
    commands: [reboot]
    targets: ["web-*"]
    reason: no
  - id: shells
    shell: true
    exempt: {groups: [sre]}
    reason: no
`))
	if err != nil {
		t.Fatal(err)
	}
	v := p.For("alice", nil, "db-1")
	for line, denied := range map[string]bool{
		"echo rm": false, "rm x": true, "reboot": false, "eval x": true, "ls | xargs echo": true, "cat x | grep y": false,
	} {
		if got := v.judge(line, false).deny; got != denied {
			t.Errorf("%s on db-1: denied %v, want %v", line, got, denied)
		}
	}
	if !p.For("alice", nil, "web-1").judge("reboot", false).deny {
		t.Error("reboot on web-1 not denied")
	}
	if p.For("sam", []string{"sre"}, "db-1").judge("", true).deny || !v.judge("", true).deny {
		t.Error("shell rule: sre exempt, alice denied")
	}
}
