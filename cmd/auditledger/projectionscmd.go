package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger/storeurl"
	"github.com/auditledger/auditledger/projections"
)

// projectionsRebuild empties the projection tables and applies the whole
// log again from the store alone.
func projectionsRebuild(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "projections rebuild --store URL --vkey KEY [--database URL]",
		"Rebuilds the PostgreSQL projection of a log from its segment store alone (no\nNATS): empties the tables, then reads every segment in order, checking it as\nverify does (chain, roots, the signed checkpoint at its end, every event), and\napplies it in one transaction with the projector's cursor. It ends in the\nrows the live projector (serve role projector) would have. The schema is\nmigrated first. The database URL is read from $AUDITLEDGER_DATABASE_URL\nwhen --database is not given, so that its password stays out of the\nprocess list.")
	storeURL := fs.String("store", "", "segment store URL")
	vkeyArg := fs.String("vkey", "", "the log's verifier key, or its file")
	database := fs.String("database", "", "postgres:// URL of the projection database (default $AUDITLEDGER_DATABASE_URL)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if *database == "" {
			*database = os.Getenv("AUDITLEDGER_DATABASE_URL")
		}
		if err := cli.Required(fs, "store", "vkey"); err != nil {
			return err
		}
		if *database == "" {
			return fmt.Errorf("projections rebuild: give --database or set AUDITLEDGER_DATABASE_URL")
		}
		v, err := loadVerifier(*vkeyArg)
		if err != nil {
			return err
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		db, err := pgxpool.New(ctx, *database)
		if err != nil {
			return fmt.Errorf("projections rebuild: --database: %w", err)
		}
		defer db.Close()
		start := time.Now()
		var total uint64
		set, finish := countProgress(stderr, 0, "rebuilding")
		var records uint64
		err = projections.Rebuild(ctx, projections.Config{DB: db, Store: store.Store, Verifier: v}, func(done, all uint64) {
			if total == 0 {
				total = all
				set, finish = countProgress(stderr, int64(all), "rebuilding")
			}
			records = done
			set(int64(done))
		})
		finish()
		if err != nil {
			return fmt.Errorf("projections rebuild: %w", err)
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "rebuilt %d records from %s in %v (%.0f records/s)\n", records, store.Store, took.Round(time.Millisecond), float64(records)/took.Seconds())
		return nil
	}
}
