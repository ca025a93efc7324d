package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/domainstats/domainstats/ingest"
)

// fingerprintBytes is how much of the start of a file its fingerprint
// covers. A rotated log differs from its predecessor within its first
// lines, which carry timestamps.
const fingerprintBytes = 4096

// checkpointVersion is stored in every checkpoint so that a later layout
// can tell old values apart.
const checkpointVersion = 1

// inputFile identifies one file, so that a checkpoint is used only for
// the file it was taken on.
type inputFile struct {
	Device uint64 `json:"device"`
	Inode  uint64 `json:"inode"`

	// PrefixLen is how many bytes from the start PrefixSHA256 covers: the
	// file's size when it was smaller than fingerprintBytes.
	PrefixLen    int64  `json:"prefix_len"`
	PrefixSHA256 []byte `json:"prefix_sha256"`
}

// checkpoint is the value stored per input file: which file, and how far
// into it every event has been committed.
type checkpoint struct {
	Version  int             `json:"version"`
	File     inputFile       `json:"file"`
	Position ingest.Position `json:"position"`
}

func (c checkpoint) encode() []byte {
	c.Version = checkpointVersion
	data, err := json.Marshal(c)
	if err != nil {
		// checkpoint holds only numbers, strings and byte slices, which
		// json.Marshal always encodes.
		panic(err)
	}
	return data
}

func decodeCheckpoint(data []byte) (checkpoint, error) {
	var c checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return checkpoint{}, fmt.Errorf("invalid checkpoint: %w", err)
	}
	if c.Version != checkpointVersion {
		return checkpoint{}, fmt.Errorf("checkpoint version %d, expected %d", c.Version, checkpointVersion)
	}
	if c.Position.Offset < 0 || c.File.PrefixLen < 0 || c.File.PrefixLen > fingerprintBytes {
		return checkpoint{}, errors.New("invalid checkpoint: negative offset or invalid prefix length")
	}
	return c, nil
}

// checkpointKey returns the store key of the checkpoint of path: its
// absolute, cleaned form.
func checkpointKey(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("resolve input path %s: %w", path, err)
	}
	return "ingest:" + abs, nil
}

// identifyFile returns the identity of f, whose offset must be at the
// start. It leaves the offset at the start.
func identifyFile(f *os.File) (inputFile, error) {
	info, err := f.Stat()
	if err != nil {
		return inputFile{}, err
	}

	device, inode := fileID(info)
	prefix, err := readPrefix(f, min(info.Size(), fingerprintBytes))
	if err != nil {
		return inputFile{}, err
	}
	sum := sha256.Sum256(prefix)
	return inputFile{Device: device, Inode: inode, PrefixLen: int64(len(prefix)), PrefixSHA256: sum[:]}, nil
}

// sameFile reports whether f, identified as current, is the file that c
// was taken on, grown or not. It leaves the offset of f at the start.
func (c checkpoint) sameFile(f *os.File, current inputFile) (bool, error) {
	if current.Device != c.File.Device || current.Inode != c.File.Inode {
		return false, nil
	}

	info, err := f.Stat()
	if err != nil {
		return false, err
	}
	if info.Size() < c.File.PrefixLen {
		return false, nil
	}

	// A file that shrank below the checkpoint was truncated and rewritten.
	// The size of a gzip file does not bound the uncompressed offset.
	if !isGzip(f) && info.Size() < c.Position.Offset {
		return false, nil
	}

	prefix, err := readPrefix(f, c.File.PrefixLen)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(prefix)
	return bytes.Equal(sum[:], c.File.PrefixSHA256), nil
}

// readPrefix returns the first n bytes of f and seeks f back to the start.
func readPrefix(f *os.File, n int64) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	prefix := make([]byte, n)
	if _, err := io.ReadFull(f, prefix); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return prefix, nil
}

func isGzip(f *os.File) bool {
	magic, err := readPrefix(f, 2)
	return err == nil && magic[0] == 0x1f && magic[1] == 0x8b
}
