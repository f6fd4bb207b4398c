package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
)

// versionCmd prints what this binary was built from.
func versionCmd(c *cobra.Command) cli.Run {
	cli.Describe(c, "version", "Prints the module version, the source revision and the Go toolchain this binary\nwas built from.")
	return func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
}

func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "auditledger (no build information)"
	}
	v := "auditledger " + bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	if rev != "" {
		v += " revision " + rev + modified
	}
	return v + " " + bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}
