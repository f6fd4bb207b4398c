package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// logOptions are the query parameters of /containerLogs the API server
// passes on (from kubectl logs).
type logOptions struct {
	follow     bool
	timestamps bool
	tail       int64 // -1: all
	since      time.Time
	limit      int64 // 0: none
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tail: -1}
	var err error
	if o.follow, err = boolParam(q.Get("follow")); err != nil {
		return o, fmt.Errorf("follow: %v", err)
	}
	if o.timestamps, err = boolParam(q.Get("timestamps")); err != nil {
		return o, fmt.Errorf("timestamps: %v", err)
	}
	if prev, err := boolParam(q.Get("previous")); err != nil || prev {
		return o, fmt.Errorf("previous: no previous container (the test kubelet does not restart containers)")
	}
	if s := q.Get("tailLines"); s != "" {
		if o.tail, err = strconv.ParseInt(s, 10, 64); err != nil || o.tail < 0 {
			return o, fmt.Errorf("tailLines %q is not a count", s)
		}
	}
	if s := q.Get("limitBytes"); s != "" {
		if o.limit, err = strconv.ParseInt(s, 10, 64); err != nil || o.limit <= 0 {
			return o, fmt.Errorf("limitBytes %q is not a positive count", s)
		}
	}
	if s := q.Get("sinceSeconds"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("sinceSeconds %q is not a positive count", s)
		}
		o.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if s := q.Get("sinceTime"); s != "" {
		if o.since, err = time.Parse(time.RFC3339, s); err != nil {
			return o, fmt.Errorf("sinceTime: %v", err)
		}
	}
	return o, nil
}

func boolParam(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// serveLogs serves a container's log from its CRI-format file as the
// kubelet does: the text of each line (with its timestamp when asked),
// the last N lines, since a time, up to a byte limit, and followed until
// the client leaves or the container exits.
func (k *kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	t, ok := k.target(w, r, true)
	if !ok {
		return
	}
	o, err := parseLogOptions(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(t.container.logPath)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	written := int64(0)
	// emit writes one log line; false once the byte limit is reached or the
	// client is gone.
	emit := func(line []byte) bool {
		text, ok := formatLine(line, o)
		if !ok {
			return true
		}
		if o.limit > 0 && written+int64(len(text)) > o.limit {
			text = text[:o.limit-written]
		}
		n, err := w.Write(text)
		written += int64(n)
		if err != nil || (o.limit > 0 && written >= o.limit) {
			return false
		}
		return true
	}

	// What is there now: whole lines only, the last tail of them.
	data, err := io.ReadAll(f)
	if err != nil {
		return
	}
	end := bytes.LastIndexByte(data, '\n') + 1
	offset := int64(end)
	lines := splitLines(data[:end])
	if o.tail >= 0 && int64(len(lines)) > o.tail {
		lines = lines[int64(len(lines))-o.tail:]
	}
	for _, l := range lines {
		if !emit(l) {
			return
		}
	}
	if flusher != nil {
		flusher.Flush()
	}
	if !o.follow {
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		exited := false
		select {
		case <-r.Context().Done():
			return
		case <-t.container.done:
			exited = true
		case <-tick.C:
		}
		// Read what was appended since; a partial last line waits for its end.
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			return
		}
		data, err := io.ReadAll(f)
		if err != nil {
			return
		}
		end := bytes.LastIndexByte(data, '\n') + 1
		offset += int64(end)
		for _, l := range splitLines(data[:end]) {
			if !emit(l) {
				return
			}
		}
		if end > 0 && flusher != nil {
			flusher.Flush()
		}
		if exited {
			return
		}
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// formatLine turns a CRI log line ("TIMESTAMP STREAM F|P TEXT") into what
// kubectl shows; a line not in that form is passed on as it is.
func formatLine(line []byte, o logOptions) ([]byte, bool) {
	parts := strings.SplitN(string(line), " ", 4)
	if len(parts) < 3 {
		return append(line, '\n'), true
	}
	ts, err := time.Parse(time.RFC3339Nano, parts[0])
	if err != nil || (parts[1] != "stdout" && parts[1] != "stderr") || (parts[2] != "F" && parts[2] != "P") {
		return append(line, '\n'), true
	}
	if !o.since.IsZero() && ts.Before(o.since) {
		return nil, false
	}
	text := ""
	if len(parts) == 4 {
		text = parts[3]
	}
	if parts[2] == "F" {
		text += "\n"
	}
	if o.timestamps {
		text = ts.UTC().Format(time.RFC3339Nano) + " " + text
	}
	return []byte(text), true
}
