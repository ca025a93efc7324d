package domainstats

import (
	"fmt"
	"testing"
)

var fuzzSketchKey = sketchKey("example.com", 475_000)

// FuzzDecodeSketch checks that arbitrary bytes, with a valid checksum
// appended so that the sketch decoder is reached, never panic, and that a
// sketch that decodes can be estimated and encoded again.
func FuzzDecodeSketch(f *testing.F) {
	for _, precision := range []uint8{4, 14} {
		sk := (&Store{precision: precision}).newSketch()
		for i := range 1000 {
			sk.InsertHash(hashFoldedASCII(fmt.Sprint(i)))
		}
		data, err := encodeSketch(fuzzSketchKey, sk)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:len(data)-4])
	}
	f.Add([]byte{sketchVersion, 2, 14, 0, 0})
	f.Add([]byte{sketchVersion, 2, 4, 0, 0, 0, 0, 0, 16, 1, 2, 3})

	f.Fuzz(func(t *testing.T, body []byte) {
		sk, err := decodeSketch(fuzzSketchKey, appendCRC(string(fuzzSketchKey), append([]byte{}, body...)))
		if err != nil {
			return
		}
		estimate(sk)
		if _, err := encodeSketch(fuzzSketchKey, sk); err != nil {
			t.Fatalf("decoded sketch does not encode: %v", err)
		}
	})
}
