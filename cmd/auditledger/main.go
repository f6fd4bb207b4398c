// Command auditledger is the tamper-evident audit ledger: it appends audit
// events to a hash-chained Merkle log sealed in write-once segments, signs
// checkpoints, and verifies stores and proofs offline. Its commands are
// defined in commands.go, the roles of serve in roles.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.Code(err))
}
