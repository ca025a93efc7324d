package bench

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLiteSchema selects the table layout of a SQLiteCounter.
type SQLiteSchema int

const (
	// SQLitePairs keeps one row per (domain, machine) with its first and
	// last seen time, updated by upserts, and an index on (domain,
	// last_seen, first_seen) that covers the window query. Counts are exact
	// because windows end at now and no event lies in the future.
	SQLitePairs SQLiteSchema = iota

	// SQLiteEvents keeps every event as a row, with an index on (domain,
	// at, machine) that covers the window query, and counts with
	// COUNT(DISTINCT machine).
	SQLiteEvents
)

// String returns the schema's name as used in benchmark names.
func (s SQLiteSchema) String() string {
	if s == SQLiteEvents {
		return "sqlite-events"
	}
	return "sqlite-pairs"
}

// SQLiteBatchSize is the number of events that a SQLiteCounter writes per
// transaction.
const SQLiteBatchSize = 10_000

var sqliteSchemas = map[SQLiteSchema]struct{ create, insert, count string }{
	SQLitePairs: {
		create: `CREATE TABLE pairs (
			domain     TEXT    NOT NULL,
			machine    TEXT    NOT NULL,
			first_seen INTEGER NOT NULL,
			last_seen  INTEGER NOT NULL,
			PRIMARY KEY (domain, machine)
		) WITHOUT ROWID;
		CREATE INDEX pairs_domain_last_seen ON pairs (domain, last_seen, first_seen);`,
		insert: `INSERT INTO pairs (domain, machine, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
			ON CONFLICT (domain, machine) DO UPDATE SET
				first_seen = min(first_seen, excluded.first_seen),
				last_seen  = max(last_seen, excluded.last_seen)`,
		count: `SELECT count(*), coalesce(min(first_seen), 0), coalesce(max(last_seen), 0)
			FROM pairs WHERE domain = ?1 AND last_seen >= ?2 AND last_seen <= ?3`,
	},
	SQLiteEvents: {
		create: `CREATE TABLE events (
			domain  TEXT    NOT NULL,
			machine TEXT    NOT NULL,
			at      INTEGER NOT NULL
		);
		CREATE INDEX events_domain_at_machine ON events (domain, at, machine);`,
		insert: `INSERT INTO events (domain, machine, at) VALUES (?1, ?2, ?3)`,
		count: `SELECT count(DISTINCT machine), coalesce(min(at), 0), coalesce(max(at), 0)
			FROM events WHERE domain = ?1 AND at >= ?2 AND at <= ?3`,
	},
}

// SQLiteCounter is the SQLite baseline, through the pure Go driver
// modernc.org/sqlite, in WAL mode with synchronous=FULL so that every
// committed batch is durable, like the store's flushes.
type SQLiteCounter struct {
	schema SQLiteSchema
	now    time.Time
	db     *sql.DB
	insert *sql.Stmt
	count  *sql.Stmt

	tx      *sql.Tx   // open batch, nil between batches
	txStmt  *sql.Stmt // insert bound to tx
	batched int       // events in tx
}

// OpenSQLite creates the database file at path with schema, whose windows
// end at now. The file must not exist yet.
func OpenSQLite(path string, schema SQLiteSchema, now time.Time) (*SQLiteCounter, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("sqlite: %s already exists, remove it or pick a new path", path)
	}

	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=cache_size(-65536)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	// One connection, which the batch transaction and the queries share.
	// Count commits the open batch before it queries, so it never waits.
	db.SetMaxOpenConns(1)

	c := &SQLiteCounter{schema: schema, now: now, db: db}
	if err := c.prepare(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func (c *SQLiteCounter) prepare() error {
	statements := sqliteSchemas[c.schema]

	if _, err := c.db.Exec(statements.create); err != nil {
		return fmt.Errorf("sqlite: create %s schema: %w", c.schema, err)
	}

	var err error
	if c.insert, err = c.db.Prepare(statements.insert); err != nil {
		return fmt.Errorf("sqlite: prepare insert: %w", err)
	}
	if c.count, err = c.db.Prepare(statements.count); err != nil {
		return fmt.Errorf("sqlite: prepare count: %w", err)
	}
	return nil
}

// Record adds one event to the open batch, and commits the batch once it
// holds SQLiteBatchSize events.
func (c *SQLiteCounter) Record(e Event) error {
	if c.tx == nil {
		tx, err := c.db.Begin()
		if err != nil {
			return fmt.Errorf("sqlite: begin batch: %w", err)
		}
		c.tx = tx
		c.txStmt = tx.Stmt(c.insert)
	}

	if _, err := c.txStmt.Exec(e.Domain, e.Machine, e.At.UnixNano()); err != nil {
		return fmt.Errorf("sqlite: insert %q %q: %w", e.Domain, e.Machine, err)
	}

	c.batched++
	if c.batched >= SQLiteBatchSize {
		return c.Flush()
	}
	return nil
}

// Flush commits the open batch.
func (c *SQLiteCounter) Flush() error {
	if c.tx == nil {
		return nil
	}

	err := c.tx.Commit()
	c.tx, c.txStmt, c.batched = nil, nil, 0
	if err != nil {
		return fmt.Errorf("sqlite: commit batch: %w", err)
	}
	return nil
}

// Count flushes the open batch, then runs the window query of the schema.
func (c *SQLiteCounter) Count(domain string, lookBack time.Duration) (Result, error) {
	if err := c.Flush(); err != nil {
		return Result{}, err
	}

	from := c.now.Add(-lookBack).UnixNano()
	var count, first, last int64
	err := c.count.QueryRow(domain, from, c.now.UnixNano()).Scan(&count, &first, &last)
	if err != nil {
		return Result{}, fmt.Errorf("sqlite: count %q: %w", domain, err)
	}
	if count == 0 {
		return Result{}, fmt.Errorf("%s: %q: %w", c.schema, domain, ErrNoEvents)
	}
	return Result{Machines: count, FirstSeen: unixUTC(max(first, from)), LastSeen: unixUTC(last)}, nil
}

// Rows returns the number of rows in the schema's table: distinct pairs
// for SQLitePairs, events for SQLiteEvents.
func (c *SQLiteCounter) Rows() (int64, error) {
	if err := c.Flush(); err != nil {
		return 0, err
	}

	table := "pairs"
	if c.schema == SQLiteEvents {
		table = "events"
	}
	var n int64
	if err := c.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: count rows of %s: %w", table, err)
	}
	return n, nil
}

// Close commits the open batch and closes the database, which checkpoints
// the write-ahead log into the main file.
func (c *SQLiteCounter) Close() error {
	flushErr := c.Flush()
	return errors.Join(flushErr, c.insert.Close(), c.count.Close(), c.db.Close())
}
