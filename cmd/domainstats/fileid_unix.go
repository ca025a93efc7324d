//go:build unix

package main

import (
	"os"
	"syscall"
)

// fileID returns the device and inode numbers of a file.
func fileID(info os.FileInfo) (device, inode uint64) {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}
