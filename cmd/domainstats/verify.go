package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/domainstats/domainstats"
)

// errDamaged is returned by verify when the store has damage. The damage
// has already been printed.
var errDamaged = errors.New("store is damaged")

func runVerify(_ context.Context, args []string, env environment) error {
	fs := newFlagSet("verify", "verify [flags]",
		"Reads every stored domain record and sketch, checks its format version, checksum and\n"+
			"layout, and checks the file's page structure. Prints one line per damaged part, by\n"+
			"domain, then a summary. Exits with status 1 when anything is damaged. It opens the\n"+
			"file read-only and writes nothing; it can run beside other read-only commands, but\n"+
			"not while serve or ingest has the file open.", env)
	db := fs.String("db", defaultDB, "store file `path`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "domainstats verify: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}

	if err := requireStore(*db); err != nil {
		return err
	}
	store, err := domainstats.Open(*db, &domainstats.Options{ReadOnly: true})
	if errors.Is(err, domainstats.ErrLocked) {
		return fmt.Errorf("open store %s: %w: another domainstats process, such as serve, has it open; stop that process and run verify again", *db, err)
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", *db, err)
	}

	report, verifyErr := store.Verify()
	closeErr := store.Close()
	if verifyErr != nil {
		return fmt.Errorf("verify store %s: %w", *db, verifyErr)
	}
	if closeErr != nil {
		return fmt.Errorf("close store %s: %w", *db, closeErr)
	}

	for _, damage := range report.Damaged {
		fmt.Fprintln(env.stdout, damage)
	}
	fmt.Fprintf(env.stdout, "%s: %d domain records and %d sketches checked, %d damaged parts found\n",
		*db, report.Domains, report.Sketches, report.DamagedTotal)
	if report.DamagedTotal > len(report.Damaged) {
		fmt.Fprintf(env.stdout, "only the first %d damaged parts are listed\n", len(report.Damaged))
	}
	if report.DamagedTotal > 0 {
		return fmt.Errorf("%w: %d damaged parts in %s", errDamaged, report.DamagedTotal, *db)
	}
	return nil
}
