package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The Redis server is shared by every test and benchmark of the package:
// started on first use, stopped by TestMain.
var (
	redisOnce   sync.Once
	redisShared *RedisServer
	redisErr    error
)

// sharedRedisServer returns the package's Redis server, starting it on the
// first call.
func sharedRedisServer() (*RedisServer, error) {
	redisOnce.Do(func() {
		redisShared, redisErr = StartRedis(context.Background())
	})
	return redisShared, redisErr
}

// sharedRedis returns the package's Redis server, or skips tb when
// redis-server is not installed.
func sharedRedis(tb testing.TB) *RedisServer {
	tb.Helper()

	server, err := sharedRedisServer()
	if err != nil {
		skipOrFatal(tb, err)
	}
	return server
}

// skipOrFatal skips tb when err means that redis-server is not installed,
// and fails it otherwise.
func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()

	if errors.Is(err, ErrRedisMissing) {
		tb.Skipf("skipping: %v", err)
	}
	tb.Fatal(err)
}

// Logical Redis databases, one per data set, so that emptying one leaves
// the others alone.
const (
	redisDBTests = iota
	redisDBIngest
	redisDBSizes
	redisDBZeek
)

func TestMain(m *testing.M) {
	code := m.Run()

	cleanupFixtures()
	if redisShared != nil {
		if err := redisShared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// implementations are the names of the counters that run side by side, as
// they appear in benchmark names.
var implementations = []string{"store", "sqlite-pairs", "sqlite-events", "redis-hll", "map"}

// openCounter opens the counter named impl, with its files in dir and its
// Redis keys in logical database redisDB.
func openCounter(impl, dir string, redisDB int) (Counter, error) {
	switch impl {
	case "store":
		return OpenStore(filepath.Join(dir, "store.db"), BenchNow, time.Second)
	case "sqlite-pairs":
		return OpenSQLite(filepath.Join(dir, "pairs.db"), SQLitePairs, BenchNow)
	case "sqlite-events":
		return OpenSQLite(filepath.Join(dir, "events.db"), SQLiteEvents, BenchNow)
	case "redis-hll":
		server, err := sharedRedisServer()
		if err != nil {
			return nil, err
		}
		return NewRedisCounter(context.Background(), server, redisDB, BenchNow)
	case "map":
		return NewMapCounter(BenchNow), nil
	}
	return nil, fmt.Errorf("unknown implementation %q", impl)
}
