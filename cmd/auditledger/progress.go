package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// inputProgress draws a progress bar on stderr, when stderr is a
// terminal, while r (a command's stdin) is read: bytes read out of the
// file's size when stdin is a regular file, else a running count. done
// ends the bar, leaving the line clear for the command's summary.
func inputProgress(r io.Reader, stderr io.Writer, desc string) (_ io.Reader, done func()) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return r, func() {}
	}
	total := int64(-1)
	if in, ok := r.(*os.File); ok {
		if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)
	pr := progressbar.NewReader(r, bar)
	return &pr, func() { bar.Finish() }
}

// countProgress draws a bar of done out of total records on stderr, when
// stderr is a terminal; set moves it to done.
func countProgress(stderr io.Writer, total int64, desc string) (set func(done int64), finish func()) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(int64) {}, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("records"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(done int64) { bar.Set64(done) }, func() { bar.Finish() }
}
