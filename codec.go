package domainstats

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"unsafe"
)

// A domain record is stored under the normalized domain in the domains
// bucket. Its layout, in order:
//
//	byte     format version (recordVersion)
//	byte     mode: modeExact or modeSketch
//	uvarint  number of active hours H
//	H times  uvarint hour (the first absolute, then the delta to the
//	         previous hour), uvarint first and uvarint last event time as
//	         milliseconds into that hour
//	modeExact only:
//	uvarint  number of machines M, sorted by machine hash
//	M times  8 bytes machine hash (little endian), uvarint number of runs R,
//	         then R times uvarint start delta and uvarint run length - 1.
//	         The first start is relative to the first active hour, each
//	         later one to the previous run's last hour.
//	4 bytes  CRC-32C of the key, then everything before it (little
//	         endian), so that a damaged key fails the check too
//
// Hours count whole hours since the Unix epoch. A run is a stretch of
// consecutive hours in which the machine contacted the domain.
const (
	recordVersion = 1
	modeExact     = 0
	modeSketch    = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTruncated and friends describe why a record failed to decode; callers
// wrap them with ErrCorrupt and the domain.
var (
	errTruncated   = errors.New("record is truncated")
	errChecksum    = errors.New("checksum mismatch")
	errVersion     = errors.New("unknown record format version")
	errMode        = errors.New("unknown record mode")
	errOutOfOrder  = errors.New("hours or machines out of order")
	errTrailing    = errors.New("trailing bytes after record")
	errHourOverrun = errors.New("hour out of range")
)

// hourSpan is the first and last event time, in Unix milliseconds, of the
// events of one hour.
type hourSpan struct {
	hour        uint32
	first, last int64
}

// hourRun is a stretch of consecutive active hours, both ends included.
type hourRun struct {
	start, end uint32
}

// machineRuns is one machine of an exact-mode record.
type machineRuns struct {
	hash uint64
	runs []hourRun
}

// domainState is a decoded domain record.
type domainState struct {
	mode     byte
	hours    []hourSpan    // sorted by hour
	machines []machineRuns // sorted by hash, exact mode only
}

const millisPerHour = 3_600_000

// encode appends the record of the domain name, in the layout described
// above, to dst.
func (st *domainState) encode(name string, dst []byte) []byte {
	dst = append(dst, recordVersion, st.mode)

	dst = binary.AppendUvarint(dst, uint64(len(st.hours)))
	var previous uint32
	for i, h := range st.hours {
		if i == 0 {
			dst = binary.AppendUvarint(dst, uint64(h.hour))
		} else {
			dst = binary.AppendUvarint(dst, uint64(h.hour-previous))
		}
		previous = h.hour
		base := int64(h.hour) * millisPerHour
		dst = binary.AppendUvarint(dst, uint64(h.first-base))
		dst = binary.AppendUvarint(dst, uint64(h.last-base))
	}

	if st.mode == modeExact {
		var base uint32
		if len(st.hours) > 0 {
			base = st.hours[0].hour
		}
		dst = binary.AppendUvarint(dst, uint64(len(st.machines)))
		for _, m := range st.machines {
			dst = binary.LittleEndian.AppendUint64(dst, m.hash)
			dst = binary.AppendUvarint(dst, uint64(len(m.runs)))
			last := base
			for _, r := range m.runs {
				dst = binary.AppendUvarint(dst, uint64(r.start-last))
				dst = binary.AppendUvarint(dst, uint64(r.end-r.start))
				last = r.end
			}
		}
	}

	return appendCRC(name, dst)
}

// appendCRC appends the CRC-32C of key followed by data to data.
func appendCRC(key string, data []byte) []byte {
	return binary.LittleEndian.AppendUint32(data, keyedCRC(key, data))
}

func keyedCRC(key string, data []byte) uint32 {
	// crc32.Update only reads its input, so the key's bytes are passed
	// without the copy that a conversion to []byte makes on every query.
	crc := crc32.Update(0, castagnoli, unsafe.Slice(unsafe.StringData(key), len(key)))
	return crc32.Update(crc, castagnoli, data)
}

// recordReader walks the bytes of a record. After the first error every
// read returns zero and err keeps that first error, so callers check once.
type recordReader struct {
	data []byte
	pos  int
	err  error
}

// openRecord checks the checksum and version of the record of name and
// returns a reader positioned after the mode byte.
func openRecord(name string, data []byte) (recordReader, byte, error) {
	if len(data) < 2+4 {
		return recordReader{}, 0, errTruncated
	}
	body := data[:len(data)-4]
	if keyedCRC(name, body) != binary.LittleEndian.Uint32(data[len(data)-4:]) {
		return recordReader{}, 0, errChecksum
	}
	if body[0] != recordVersion {
		return recordReader{}, 0, errVersion
	}
	mode := body[1]
	if mode != modeExact && mode != modeSketch {
		return recordReader{}, 0, errMode
	}
	return recordReader{data: body, pos: 2}, mode, nil
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.data[r.pos:])
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.pos += n
	return v
}

// hour reads a uvarint that must fit an hour number.
func (r *recordReader) hour() uint32 {
	v := r.uvarint()
	if v > 1<<32-1 {
		r.fail(errHourOverrun)
		return 0
	}
	return uint32(v)
}

func (r *recordReader) uint64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.data)-r.pos < 8 {
		r.err = errTruncated
		return 0
	}
	v := binary.LittleEndian.Uint64(r.data[r.pos:])
	r.pos += 8
	return v
}

// count reads a length prefix and checks that at least minBytes bytes per
// item remain, so a corrupt count cannot trigger a huge allocation.
func (r *recordReader) count(minBytes int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(len(r.data)-r.pos)/uint64(minBytes) {
		r.err = errTruncated
		return 0
	}
	return int(v)
}

func (r *recordReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// addHour returns base+delta, failing on overflow.
func (r *recordReader) addHour(base uint32, delta uint64) uint32 {
	if uint64(base)+delta > 1<<32-1 {
		r.fail(errHourOverrun)
		return 0
	}
	return base + uint32(delta)
}

// hourSpans reads the hours section, calling visit for each hour in order,
// and returns the first and last hour.
func (r *recordReader) hourSpans(visit func(hourSpan)) (base, final uint32) {
	n := r.count(3)
	var hour uint32
	for i := 0; i < n && r.err == nil; i++ {
		delta := r.uvarint()
		if i == 0 {
			hour = r.addHour(0, delta)
			base = hour
		} else {
			if delta == 0 {
				r.fail(errOutOfOrder)
			}
			hour = r.addHour(hour, delta)
		}
		start := int64(hour) * millisPerHour
		first := r.uvarint()
		last := r.uvarint()
		if first > last || last >= millisPerHour {
			r.fail(errOutOfOrder)
		}
		if r.err == nil {
			visit(hourSpan{hour: hour, first: start + int64(first), last: start + int64(last)})
		}
	}
	return base, hour
}

// machine reads one machine of an exact-mode record, appending its runs to
// runs. Every run must lie between the record's first and last hour.
func (r *recordReader) machine(base, final uint32, runs []hourRun) (uint64, []hourRun) {
	hash := r.uint64()
	n := r.count(2)
	last := base
	for i := 0; i < n && r.err == nil; i++ {
		startDelta := r.uvarint()
		if i > 0 && startDelta < 2 {
			// Runs are kept merged, so the next one starts at least two
			// hours after the previous one ended.
			r.fail(errOutOfOrder)
		}
		start := r.addHour(last, startDelta)
		end := r.addHour(start, r.uvarint())
		if end > final {
			r.fail(errHourOverrun)
		}
		runs = append(runs, hourRun{start: start, end: end})
		last = end
	}
	if n == 0 {
		r.fail(errOutOfOrder)
	}
	return hash, runs
}

// decodeState decodes the whole record of the domain name.
func decodeState(name string, data []byte) (*domainState, error) {
	r, mode, err := openRecord(name, data)
	if err != nil {
		return nil, err
	}

	st := &domainState{mode: mode}
	base, final := r.hourSpans(func(h hourSpan) { st.hours = append(st.hours, h) })

	if mode == modeExact {
		n := r.count(9)
		st.machines = make([]machineRuns, 0, n)
		var all []hourRun
		for i := 0; i < n && r.err == nil; i++ {
			from := len(all)
			var hash uint64
			hash, all = r.machine(base, final, all)
			if i > 0 && hash <= st.machines[i-1].hash {
				r.fail(errOutOfOrder)
			}
			st.machines = append(st.machines, machineRuns{hash: hash, runs: all[from:len(all):len(all)]})
		}
	}

	if r.err != nil {
		return nil, r.err
	}
	if r.pos != len(r.data) {
		return nil, errTrailing
	}
	return st, nil
}

// findMachine returns the index of hash in st.machines, or where it would be
// inserted, and whether it is there.
func (st *domainState) findMachine(hash uint64) (int, bool) {
	return slices.BinarySearchFunc(st.machines, hash, func(m machineRuns, h uint64) int {
		switch {
		case m.hash < h:
			return -1
		case m.hash > h:
			return 1
		}
		return 0
	})
}
