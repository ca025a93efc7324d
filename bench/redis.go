package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRedisMissing is returned by StartRedis when no redis-server binary is
// on PATH.
var ErrRedisMissing = errors.New("bench: redis-server is not installed (on Debian: apt-get install redis-server)")

// RedisServer is a redis-server process that the benchmarks start on a free
// loopback port, with persistence off and its own temporary folder.
type RedisServer struct {
	Addr string // host:port on 127.0.0.1

	cmd *exec.Cmd
	dir string
}

// StartRedis starts redis-server and waits up to 10 seconds until it
// replies to PING.
func StartRedis(ctx context.Context) (*RedisServer, error) {
	binary, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrRedisMissing
	}

	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis: create temporary folder: %w", err)
	}

	cmd := exec.Command(binary,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
		"--daemonize", "no",
	)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("redis: start %s: %w", binary, err)
	}

	server := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, dir: dir}
	if err := server.waitReady(ctx, 10*time.Second); err != nil {
		return nil, errors.Join(err, server.Stop())
	}
	return server, nil
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago. Another process may take it before redis-server binds it, and then
// StartRedis fails instead of reaching a foreign server.
func freeLoopbackPort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redis: find a free loopback port: %w", err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

func (s *RedisServer) waitReady(ctx context.Context, limit time.Duration) error {
	client := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer client.Close()

	deadline := time.Now().Add(limit)
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis: server on %s not ready after %v: %w (log in %s)", s.Addr, limit, err, s.dir)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a client of logical database db, so that separate data
// sets do not share keys.
func (s *RedisServer) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, DB: db})
}

// Stop terminates the server, waits up to 10 seconds for it to exit and
// removes its folder.
func (s *RedisServer) Stop() error {
	defer os.RemoveAll(s.dir)

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("redis: stop pid %d: %w", s.cmd.Process.Pid, err)
	}

	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis: pid %d ignored SIGTERM for 10s and was killed", s.cmd.Process.Pid)
	}
}

// RedisBatchSize is the number of PFADD commands that a RedisCounter sends
// per pipeline.
const RedisBatchSize = 1_000

// RedisCounter is the Redis HyperLogLog baseline: one key per domain per
// hour, filled with pipelined PFADD and counted with one PFCOUNT over every
// hour key of the window. Redis keeps no first or last seen time, and with
// persistence off nothing it holds is durable.
type RedisCounter struct {
	ctx    context.Context
	client *redis.Client
	now    time.Time
	pipe   redis.Pipeliner
	queued int
}

// NewRedisCounter empties database db of server and returns a RedisCounter
// on it whose windows end at now.
func NewRedisCounter(ctx context.Context, server *RedisServer, db int, now time.Time) (*RedisCounter, error) {
	client := server.Client(db)
	if err := client.FlushDB(ctx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: empty database %d: %w", db, err)
	}
	return &RedisCounter{ctx: ctx, client: client, now: now, pipe: client.Pipeline()}, nil
}

func redisHourKey(domain string, hour int64) string {
	return "hll:" + domain + ":" + strconv.FormatInt(hour, 10)
}

func unixHour(t time.Time) int64 {
	return t.Unix() / 3600
}

// Record queues a PFADD, and sends the pipeline once it holds
// RedisBatchSize commands.
func (c *RedisCounter) Record(e Event) error {
	c.pipe.PFAdd(c.ctx, redisHourKey(e.Domain, unixHour(e.At)), e.Machine)
	c.queued++
	if c.queued >= RedisBatchSize {
		return c.Flush()
	}
	return nil
}

// Flush sends the queued commands.
func (c *RedisCounter) Flush() error {
	if c.queued == 0 {
		return nil
	}
	c.queued = 0
	if _, err := c.pipe.Exec(c.ctx); err != nil {
		return fmt.Errorf("redis: send pipeline: %w", err)
	}
	return nil
}

// Count runs PFCOUNT over the hour keys from the hour of the window start
// to the hour of now. Its Result has no first or last seen time.
func (c *RedisCounter) Count(domain string, lookBack time.Duration) (Result, error) {
	if err := c.Flush(); err != nil {
		return Result{}, err
	}

	first, last := unixHour(c.now.Add(-lookBack)), unixHour(c.now)
	keys := make([]string, 0, last-first+1)
	for hour := first; hour <= last; hour++ {
		keys = append(keys, redisHourKey(domain, hour))
	}

	count, err := c.client.PFCount(c.ctx, keys...).Result()
	if err != nil {
		return Result{}, fmt.Errorf("redis: PFCOUNT %q: %w", domain, err)
	}
	if count == 0 {
		return Result{}, fmt.Errorf("redis: %q: %w", domain, ErrNoEvents)
	}
	return Result{Machines: count}, nil
}

// UsedMemory returns the server's used_memory in bytes, from INFO memory.
// It covers every logical database of the server.
func (c *RedisCounter) UsedMemory() (int64, error) {
	info, err := c.client.Info(c.ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis: INFO memory: %w", err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if value, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(value, 10, 64)
		}
	}
	return 0, errors.New("redis: INFO memory has no used_memory line")
}

// Close sends the queued commands and closes the client.
func (c *RedisCounter) Close() error {
	return errors.Join(c.Flush(), c.client.Close())
}
