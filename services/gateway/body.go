package gateway

import (
	"errors"
	"io"
	"sync"
)

// ErrBodyCut: a response body was closed before its end (the client went
// away, or the gateway stopped).
var ErrBodyCut = errors.New("closed before the end of the body")

// DigestBody returns rc, digesting what is read through it into sum (nil:
// no digest) and counting it; done is called once, at the end of the body
// (err nil), at a read error (err that error) or at a close before the end
// (ErrBodyCut), with the bytes read and sum's digest. A gateway wraps a
// response body with it to record response.digest of what its client
// received.
func DigestBody(rc io.ReadCloser, sum *KeyedSum, done func(n int64, digest string, err error)) io.ReadCloser {
	return &digestBody{rc: rc, sum: sum, done: done}
}

type digestBody struct {
	rc   io.ReadCloser
	sum  *KeyedSum
	n    int64
	once sync.Once
	done func(n int64, sum string, err error)
}

func (d *digestBody) Read(b []byte) (int, error) {
	n, err := d.rc.Read(b)
	d.sum.Write(b[:n])
	d.n += int64(n)
	if err != nil {
		var rerr error
		if err != io.EOF {
			rerr = err
		}
		d.once.Do(func() { d.done(d.n, d.sum.Digest(), rerr) })
	}
	return n, err
}

func (d *digestBody) Close() error {
	err := d.rc.Close()
	d.once.Do(func() { d.done(d.n, d.sum.Digest(), ErrBodyCut) })
	return err
}
