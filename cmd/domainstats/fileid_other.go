//go:build !unix

package main

import "os"

// fileID returns zeros where the platform has no inode numbers, so that
// only the content fingerprint distinguishes a rotated file.
func fileID(os.FileInfo) (device, inode uint64) {
	return 0, 0
}
