package cli

import (
	"context"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Run runs a command once its flags are parsed; args are its positional
// arguments.
type Run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Build defines a command's usage and flags on c (with Describe) and
// returns what runs it.
type Build func(c *cobra.Command) Run

// Describe sets a command's usage line (its path and flags, the required
// ones unbracketed) and its description, and returns its flag set.
func Describe(c *cobra.Command, usage, long string) *pflag.FlagSet {
	path := Path(c)
	parentPath := strings.TrimSuffix(strings.TrimSuffix(path, c.Name()), " ")
	c.Use = strings.TrimPrefix(strings.TrimPrefix(usage, parentPath), " ")
	c.Long = long
	// Errors name the command by its whole path ("proof verify: ...").
	c.Flags().Init(path, pflag.ContinueOnError)
	return c.Flags()
}

// Path is c's path below the root command: "proof verify".
func Path(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	_, p, _ := strings.Cut(c.CommandPath(), " ")
	return p
}

// Required reports the first of the named flags that is empty.
func Required(fs *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		if fs.Lookup(n).Value.String() == "" {
			return Usagef("%s: --%s is required (see -h)", fs.Name(), n)
		}
	}
	return nil
}

// NoArgs refuses positional arguments.
func NoArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("%s: unexpected argument %q (see -h)", Path(c), args[0])
	}
	return nil
}

// AtMostOne takes one positional argument, or none (the command says
// what it needs).
func AtMostOne(c *cobra.Command, args []string) error {
	if len(args) > 1 {
		return Usagef("%s: unexpected argument %q (see -h)", Path(c), args[1])
	}
	return nil
}
