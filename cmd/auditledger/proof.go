package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/auditledger/auditledger/cmd/auditledger/internal/cli"
	"github.com/auditledger/auditledger/ledger"
	"github.com/auditledger/auditledger/ledger/storeurl"
)

// loadLog reads and checks a store, keeping its tree for proofs. Signatures
// are checked only when a verifier key is given.
func loadLog(ctx context.Context, storeURL, vkeyArg string) (ledger.SegmentStore, *ledger.Report, error) {
	store, err := storeurl.OpenExisting(ctx, storeURL)
	if err != nil {
		return nil, nil, err
	}
	opts := ledger.VerifyOptions{KeepTree: true, SkipBulk: true} // a proof needs the tree, not every bulk piece's bytes
	if vkeyArg != "" {
		if opts.Verifier, err = loadVerifier(vkeyArg); err != nil {
			return nil, nil, err
		}
	}
	rep, err := ledger.Verify(ctx, store.Store, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w (run verify for details)", store.Store, err)
	}
	return store.Store, rep, nil
}

func proofInclusion(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "proof inclusion --store URL --index N [--size M] [--record FILE]",
		"Prints a C2SP tlog-proof@v1 that record N is in the tree of size M, with the\nsigned checkpoint of size M (default: the latest). M must be a checkpointed size\n(the end of a segment). --record writes the record's exact bytes, which is what\nthe leaf hash covers, so \"proof verify\" can check the proof offline.")
	storeURL := fs.String("store", "", "segment store URL")
	index := fs.Uint64("index", 0, "log index of the record (from 0)")
	size := fs.Uint64("size", 0, "tree size to prove against (default: the latest checkpoint)")
	vkeyArg := fs.String("vkey", "", "verifier key or file: check every signature while loading (optional)")
	recordPath := fs.String("record", "", "also write the record's bytes to this file")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		store, rep, err := loadLog(ctx, *storeURL, *vkeyArg)
		if err != nil {
			return err
		}
		m := *size
		if m == 0 {
			m = rep.Size
		}
		if *index >= m {
			return fmt.Errorf("proof inclusion: index %d is not below tree size %d", *index, m)
		}
		cp, err := store.Get(ctx, ledger.CheckpointName(m))
		if errors.Is(err, ledger.ErrNotExist) {
			return fmt.Errorf("proof inclusion: no signed checkpoint at size %d; checkpoints are signed at segment ends (see verify -v)", m)
		} else if err != nil {
			return err
		}
		hashes, err := rep.Tree.InclusionProof(*index, m)
		if err != nil {
			return err
		}
		if *recordPath != "" {
			rec, err := readRecord(ctx, store, *index)
			if err != nil {
				return err
			}
			if err := os.WriteFile(*recordPath, rec, 0o644); err != nil {
				return err
			}
		}
		p := ledger.InclusionProofText{Index: *index, Hashes: hashes, Checkpoint: cp}
		_, err = stdout.Write(p.Marshal())
		return err
	}
}

// readRecord returns the bytes of the record at index.
func readRecord(ctx context.Context, store ledger.SegmentStore, index uint64) ([]byte, error) {
	var rec []byte
	errFound := errors.New("found")
	err := ledger.ReadRecords(ctx, store, index, func(i uint64, r []byte) error {
		rec = r
		return errFound
	})
	if err == errFound {
		return rec, nil
	}
	if err == nil {
		err = fmt.Errorf("record %d not found", index)
	}
	return nil, err
}

func proofConsistency(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "proof consistency --store URL --from A --to B",
		"Prints the RFC 9162 consistency proof that the tree of size B extends the tree\nof size A, in the text form of docs/FORMAT.md. The roots to check it against are\nthose of the signed checkpoints at A and B.")
	storeURL := fs.String("store", "", "segment store URL")
	from := fs.Uint64("from", 0, "old tree size")
	to := fs.Uint64("to", 0, "new tree size (default: the log's size)")
	vkeyArg := fs.String("vkey", "", "verifier key or file: check every signature while loading (optional)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		store, rep, err := loadLog(ctx, *storeURL, *vkeyArg)
		if err != nil {
			return err
		}
		n := *to
		if n == 0 {
			n = rep.Size
		}
		if *from > n {
			return fmt.Errorf("proof consistency: --from %d is beyond --to %d", *from, n)
		}
		// A proof is checked against signed roots: both sizes must have a
		// checkpoint, except 0 (the empty tree, which every tree extends:
		// its proof is empty).
		for _, size := range []uint64{*from, n} {
			if size == 0 {
				continue
			}
			if _, err := store.Get(ctx, ledger.CheckpointName(size)); errors.Is(err, ledger.ErrNotExist) {
				return fmt.Errorf("proof consistency: no signed checkpoint at size %d to check the proof against; checkpoints are signed at segment ends (see verify -v)", size)
			} else if err != nil {
				return err
			}
		}
		hashes, err := rep.Tree.ConsistencyProof(*from, n)
		if err != nil {
			return fmt.Errorf("proof consistency: %w", err)
		}
		p := ledger.ConsistencyProofText{Old: *from, New: n, Hashes: hashes}
		_, err = stdout.Write(p.Marshal())
		return err
	}
}

func proofVerify(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "proof verify --vkey KEY --record FILE [--proof FILE]",
		"Checks a tlog-proof (from --proof or stdin) offline: the checkpoint's signature\nunder KEY, then the Merkle path from the record's leaf hash to the checkpoint's\nroot. Exit 0 if both hold, 1 otherwise.")
	vkeyArg := fs.String("vkey", "", "verifier key or file")
	recordPath := fs.String("record", "", "file with the record's exact bytes")
	proofPath := fs.String("proof", "", "file with the tlog-proof (default: stdin)")
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "vkey", "record"); err != nil {
			return err
		}
		v, err := loadVerifier(*vkeyArg)
		if err != nil {
			return err
		}
		rec, err := os.ReadFile(*recordPath)
		if err != nil {
			return err
		}
		var proof []byte
		if *proofPath != "" {
			proof, err = os.ReadFile(*proofPath)
		} else {
			proof, err = io.ReadAll(stdin)
		}
		if err != nil {
			return err
		}
		cp, err := ledger.VerifyInclusionProof(proof, rec, v)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL  %v\n", err)
			return cli.Failed(errors.New("proof does not verify"))
		}
		p, _ := ledger.ParseInclusionProof(proof)
		fmt.Fprintf(stdout, "OK    record %d is in %s at tree size %d (root %s)\n", p.Index, cp.Origin, cp.Size, cp.Root.Base64())
		return nil
	}
}

func checkpointCmd(c *cobra.Command) cli.Run {
	fs := cli.Describe(c, "checkpoint --store URL [--vkey KEY]",
		"Prints the latest signed checkpoint (C2SP tlog-checkpoint) in the store. With\n--vkey, its signature is checked first. Save it to pass to verify --since later.")
	storeURL := fs.String("store", "", "segment store URL")
	vkeyArg := fs.String("vkey", "", "verifier key or file (optional)")
	return func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		if err := cli.Required(fs, "store"); err != nil {
			return err
		}
		store, err := storeurl.OpenExisting(ctx, *storeURL)
		if err != nil {
			return err
		}
		names, err := store.Store.List(ctx, ledger.CheckpointPrefix)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return fmt.Errorf("checkpoint: %s has no checkpoints", store.Store)
		}
		b, err := store.Store.Get(ctx, names[len(names)-1])
		if err != nil {
			return err
		}
		if *vkeyArg != "" {
			v, err := loadVerifier(*vkeyArg)
			if err != nil {
				return err
			}
			if _, err := ledger.OpenCheckpoint(b, v); err != nil {
				return cli.Failed(fmt.Errorf("checkpoint %s: %w", names[len(names)-1], err))
			}
		}
		_, err = stdout.Write(b)
		return err
	}
}
