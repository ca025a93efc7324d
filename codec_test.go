package domainstats

import (
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleState() *domainState {
	base := uint32(475_000)
	return &domainState{
		mode: modeExact,
		hours: []hourSpan{
			{hour: base, first: int64(base)*millisPerHour + 5, last: int64(base)*millisPerHour + 3_599_999},
			{hour: base + 3, first: int64(base+3) * millisPerHour, last: int64(base+3)*millisPerHour + 10},
		},
		machines: []machineRuns{
			{hash: 7, runs: []hourRun{{start: base, end: base}, {start: base + 3, end: base + 3}}},
			{hash: 1 << 63, runs: []hourRun{{start: base, end: base + 3}}},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, st := range []*domainState{sampleState(), {mode: modeSketch, hours: sampleState().hours}} {
		got, err := decodeState("example.com", st.encode("example.com", nil))
		if err != nil {
			t.Fatalf("decodeState(encode(%+v)) failed: %v", st, err)
		}
		if diff := cmp.Diff(st, got, cmp.AllowUnexported(domainState{}, hourSpan{}, machineRuns{}, hourRun{})); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestDecodeStateRejectsDamage(t *testing.T) {
	data := sampleState().encode("example.com", nil)
	for i := range data {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			damaged := append([]byte{}, data...)
			damaged[i] ^= flip
			if _, err := decodeState("example.com", damaged); err == nil {
				t.Errorf("decodeState accepted the record with byte %d flipped by %#x", i, flip)
			}
		}
	}
	if _, err := decodeState("example.org", data); !errors.Is(err, errChecksum) {
		t.Errorf("decodeState under another domain = %v, want a checksum error", err)
	}
	for n := range len(data) {
		if _, err := decodeState("example.com", data[:n]); err == nil {
			t.Errorf("decodeState accepted the record cut to %d bytes", n)
		}
	}

	newer := append([]byte{}, data...)
	newer[0] = recordVersion + 1
	if _, err := decodeState("example.com", newer); !errors.Is(err, errChecksum) && !errors.Is(err, errVersion) {
		t.Errorf("decodeState of a newer version = %v, want a checksum or version error", err)
	}
}

// FuzzDecodeState feeds arbitrary bytes, with a valid checksum appended so
// that the decoder past the checksum is reached, and checks that decoding
// never panics and that what decodes survives an encode and decode
// unchanged. Bytes may differ, because the decoder accepts varints that are
// not minimally encoded.
func FuzzDecodeState(f *testing.F) {
	valid := sampleState().encode("example.com", nil)
	f.Add(valid[:len(valid)-4])
	f.Add([]byte{recordVersion, modeExact, 0, 0})
	f.Add([]byte{recordVersion, modeSketch, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0})
	f.Add([]byte{recordVersion, modeExact, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, body []byte) {
		data := appendCRC("example.com", append([]byte{}, body...))
		st, err := decodeState("example.com", data)
		if err != nil {
			return
		}
		again, err := decodeState("example.com", st.encode("example.com", nil))
		if err != nil {
			t.Fatalf("re-encoded record %x does not decode: %v", st.encode("example.com", nil), err)
		}
		// reflect.DeepEqual first, because cmp.Diff takes seconds on the
		// large records the fuzzer builds and would starve it.
		if !reflect.DeepEqual(st, again) {
			diff := cmp.Diff(st, again, cmp.AllowUnexported(domainState{}, hourSpan{}, machineRuns{}, hourRun{}))
			t.Fatalf("record changed through encode and decode (-first +second):\n%s", diff)
		}
	})
}
