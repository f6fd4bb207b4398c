// Package cli is the plumbing every auditledger command shares: the exit
// codes, usage errors that name what is wrong, and the --log-format and
// --log-level flags that configure each command's logger.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/spf13/pflag"
)

// Exit codes. A command that checked something and found it wrong (verify,
// proof verify, evidence verify, a rejected append) exits 1; anything else
// that stops a command, a wrong command line included, exits 2.
const (
	ExitFailed = 1
	ExitError  = 2
)

// Exit carries the exit code of a failure the command has established,
// such as a store that does not verify.
type Exit struct {
	Code int
	Err  error
}

func (e *Exit) Error() string { return e.Err.Error() }
func (e *Exit) Unwrap() error { return e.Err }

// Failed is an error that exits 1: the command ran and what it checked is
// wrong.
func Failed(err error) error { return &Exit{Code: ExitFailed, Err: err} }

// UsageError is a wrong command line: an unknown command or flag, a
// missing required flag, a stray argument. It exits 2, and the usage line
// of the command is printed after it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef makes a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Code is the process exit code for err: 0 for nil, the code of an Exit,
// otherwise 2.
func Code(err error) int {
	if err == nil {
		return 0
	}
	var e *Exit
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitError
}

// Log holds the persistent logging flags. Empty fields leave the choice to
// the command: serve's configuration file, or the command's own default.
type Log struct {
	Format string // json or text
	Level  string // debug, info, warn or error
}

// AddFlags defines --log-format and --log-level on fs.
func (l *Log) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&l.Format, "log-format", "", "log lines as json or text (default: serve's log.format, text for the other commands)")
	fs.StringVar(&l.Level, "log-level", "", "least level logged: debug, info, warn or error (default: serve's log.level, or the command's own)")
}

// Check rejects a format or level that is not one of the known ones.
func (l Log) Check() error {
	if l.Format != "" && !slices.Contains([]string{"json", "text"}, l.Format) {
		return Usagef("--log-format %q: want json or text", l.Format)
	}
	if l.Level != "" && !slices.Contains([]string{"debug", "info", "warn", "error"}, l.Level) {
		return Usagef("--log-level %q: want debug, info, warn or error", l.Level)
	}
	return nil
}

// Over is l with its empty fields filled from defaults.
func (l Log) Over(format, level string) Log {
	if l.Format == "" {
		l.Format = format
	}
	if l.Level == "" {
		l.Level = level
	}
	return l
}

// Logger is a logger writing to w in l's format from l's level on.
// Durations are written as "100ms", not as integers of nanoseconds.
func (l Log) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(l.Level)) // checked by Check; info otherwise
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: ReadableDurations}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ReadableDurations logs durations as "100ms", not as integers of
// nanoseconds (the JSON handler's default).
func ReadableDurations(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

type logKey struct{}

// WithLog returns ctx carrying the logging flags of the command line.
func WithLog(ctx context.Context, l Log) context.Context {
	return context.WithValue(ctx, logKey{}, l)
}

// LogFlags are the logging flags ctx carries (none: both empty).
func LogFlags(ctx context.Context) Log {
	l, _ := ctx.Value(logKey{}).(Log)
	return l
}

// Logger is the logger of a command whose own defaults are format and
// level, as the command line's logging flags override them.
func Logger(ctx context.Context, w io.Writer, format, level string) *slog.Logger {
	return LogFlags(ctx).Over(format, level).Logger(w)
}
