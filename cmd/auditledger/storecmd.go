package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

// storeInit prepares a store for the first writer: the one-time set-up an
// operator (or a compose job) runs before `serve`.
func storeInit(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "store init --store URL [--wait DURATION]",
		"Prepares a segment store for its first writer. An s3:// store's bucket is\ncreated with Object Lock (which turns versioning on), or an existing bucket\nis checked to have it: the writer refuses a bucket without. A local\ndirectory is created. Running it again changes nothing.\n\nS3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the\nURL forms are those of every --store flag (docs/COMMANDS.md#store-urls).")
	store := fs.String("store", "", "store URL")
	wait := fs.Duration("wait", 0, "keep trying this long while the S3 endpoint does not answer (a server still starting)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		deadline := time.Now().Add(*wait)
		for attempt := 0; ; attempt++ {
			did, err := storeurl.Init(ctx, *store)
			if err == nil {
				fmt.Fprintln(stdout, did)
				return nil
			}
			// Only a server that does not answer is waited for; a refusal
			// (credentials, a bucket without Object Lock) is final.
			var unreachable net.Error
			if !errors.As(err, &unreachable) || time.Now().After(deadline) {
				return fmt.Errorf("store init: %w", err)
			}
			if attempt == 0 {
				fmt.Fprintf(stderr, "store init: waiting up to %v for the store to answer: %v\n", *wait, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}
