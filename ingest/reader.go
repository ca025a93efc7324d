package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"time"
)

// Event is one observation: Machine contacted Domain at Time.
type Event struct {
	Domain  string    // as written in the log, after format decoding
	Machine string    // machine ID, host name or IP address
	Time    time.Time // UTC
	Line    int64     // 1-based line number in the uncompressed input
	Offset  int64     // byte offset just past the line, in the uncompressed input
}

// Position is a point in an input from which reading can resume. The zero
// value is the start of the input.
type Position struct {
	// Offset is the byte offset in the uncompressed input just past the
	// last line that was consumed in full.
	Offset int64

	// Line is the number of lines before Offset.
	Line int64

	// HeaderOffset is the byte offset of the header block that applies at
	// Offset: Zeek's # lines or a CSV header. It is -1 for formats without
	// a header, and ignored when Offset is zero.
	HeaderOffset int64
}

// Options configures a Reader. The zero value detects the format and reads
// from the start.
type Options struct {
	// Name identifies the input in skip reports, usually the file path.
	Name string

	// Format is the input format. If empty, defaults to FormatAuto.
	Format Format

	// Start is the position to resume from. If zero, reading starts at the
	// beginning of the input.
	Start Position

	// MaxLineBytes is the longest line that is parsed. Longer lines are
	// skipped with ReasonLineTooLong. If zero, defaults to 16 MiB.
	MaxLineBytes int

	// Follow marks an input that its producer may still be writing, such
	// as a log read again for appended lines. A final line without a line
	// break is then left for a later read: Next does not parse it and
	// LinesRead does not count it. If false, that line is read, because
	// finished files often lack the last line break.
	Follow bool
}

// defaultMaxLineBytes leaves room for a streaming API object with a few
// thousand records on one line.
const defaultMaxLineBytes = 16 << 20

// detectBytes is how much of the input format detection looks at.
const detectBytes = 64 << 10

// gzipMagic is the first two bytes of every gzip member (RFC 1952).
var gzipMagic = []byte{0x1f, 0x8b}

// ErrUnknownFormat is returned by NewReader when FormatAuto cannot tell the
// format from the first line, or when a format name is not known.
var ErrUnknownFormat = errors.New("ingest: unknown format")

// Reader reads events from one input. A Reader is not safe for concurrent
// use.
type Reader struct {
	name    string
	format  Format
	src     *bufio.Reader
	parser  parser
	maxLine int
	follow  bool

	// offset and line count what has been read from src so far.
	offset int64
	line   int64

	// linesRead counts the lines read since the start position.
	linesRead int64

	// headerOffset is the offset of the header block in force, or -1.
	headerOffset int64

	// prevHeader is true when the previous line was a header line, so a
	// header line that follows a data line starts a new block.
	prevHeader bool

	// dropUntil is the offset up to which lines are parsed for their
	// header state but their events and skips are dropped. It resumes a
	// gzip input, which cannot seek.
	dropUntil int64

	// pending holds the events and skips of the current line that Next
	// has not returned yet, and pendingEnd the position past that line.
	pending    []item
	pendingEnd Position
	pos        Position
	done       bool
}

type item struct {
	event Event
	skip  *SkipError
}

// NewReader returns a Reader over r. It decompresses r when r starts with
// the gzip magic bytes, and detects the format when opts.Format is
// FormatAuto. To resume at opts.Start on an uncompressed input, r must be
// an io.ReadSeeker positioned at the start of the input. Otherwise the
// reader reads from the current position of r and drops everything before
// opts.Start.
func NewReader(r io.Reader, opts *Options) (*Reader, error) {
	if opts == nil {
		opts = &Options{}
	}

	format := opts.Format
	if format == "" {
		format = FormatAuto
	}
	if !format.valid() {
		return nil, fmt.Errorf("%w %q: use one of %v", ErrUnknownFormat, format, formatNames())
	}

	maxLine := opts.MaxLineBytes
	if maxLine <= 0 {
		maxLine = defaultMaxLineBytes
	}

	rd := &Reader{
		name:         opts.Name,
		maxLine:      maxLine,
		follow:       opts.Follow,
		headerOffset: -1,
		pos:          Position{HeaderOffset: -1},
	}

	// Look at the first bytes to find gzip, and decompress if needed.
	seeker, _ := r.(io.ReadSeeker)
	raw := bufio.NewReaderSize(r, detectBytes)
	magic, err := raw.Peek(len(gzipMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ingest: read %s: %w", rd.displayName(), err)
	}
	compressed := bytes.Equal(magic, gzipMagic)
	if compressed {
		zr, err := gzip.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("ingest: %s: unreadable gzip stream: %w", rd.displayName(), err)
		}
		rd.src = bufio.NewReaderSize(zr, detectBytes)
		seeker = nil
	} else {
		rd.src = raw
	}

	// Detect the format from the decompressed content.
	if format == FormatAuto {
		prefix, err := rd.src.Peek(detectBytes)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("ingest: read %s: %w", rd.displayName(), err)
		}
		format, err = Detect(prefix)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rd.displayName(), err)
		}
	}
	rd.format = format
	rd.parser = newParser(format)

	if opts.Start.Offset > 0 {
		if err := rd.resume(opts.Start, seeker); err != nil {
			return nil, err
		}
	}
	return rd, nil
}

// resume moves the reader to start. With a seeker it replays the header
// block at start.HeaderOffset and then seeks to start.Offset. Without one
// it drops the events of every line that ends at or before start.Offset.
func (r *Reader) resume(start Position, seeker io.ReadSeeker) error {
	if seeker == nil {
		r.dropUntil = start.Offset
		return nil
	}

	if start.HeaderOffset >= 0 {
		if err := r.seek(seeker, start.HeaderOffset); err != nil {
			return err
		}
		if err := r.replayHeader(start.Offset); err != nil {
			return err
		}
	}

	if err := r.seek(seeker, start.Offset); err != nil {
		return err
	}
	r.line = start.Line
	r.headerOffset = start.HeaderOffset
	r.pos = start
	return nil
}

func (r *Reader) seek(seeker io.ReadSeeker, offset int64) error {
	if _, err := seeker.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("ingest: seek %s to offset %d: %w", r.displayName(), offset, err)
	}
	r.src.Reset(seeker)
	r.offset = offset
	return nil
}

// replayHeader feeds the header lines that start at the current offset to
// the parser, stopping at the first data line or at end.
func (r *Reader) replayHeader(end int64) error {
	for r.offset < end {
		raw, _, err := r.readLine()
		if err != nil {
			return err
		}
		if raw == nil {
			return nil
		}
		if r.parser.header(bytes.TrimPrefix(trimLine(raw), utf8BOM)) == dataLine {
			r.prevHeader = false
			return nil
		}
		r.prevHeader = true
	}
	return nil
}

// Format returns the format being read, after detection.
func (r *Reader) Format() Format { return r.format }

// LinesRead returns the number of lines read past the start position,
// including header, blank and skipped lines. It is the same for a plain
// and a gzip input, although a resumed gzip input is decompressed from
// its start.
func (r *Reader) LinesRead() int64 { return r.linesRead }

// Position returns the point just past the last line whose events and
// skips Next has all returned. Resuming there repeats no line and loses
// none. A final line without a line break is never counted as consumed,
// because a log that is still being written may complete it later, so
// resuming repeats that line.
func (r *Reader) Position() Position { return r.pos }

// Next returns the next event. It returns a *SkipError for a line or record
// that cannot be used, after which the caller may call Next again, and
// io.EOF at the end of the input. Any other error, such as a corrupt gzip
// stream, is final.
func (r *Reader) Next() (Event, error) {
	for {
		if len(r.pending) > 0 {
			it := r.pending[0]
			r.pending = r.pending[1:]
			if len(r.pending) == 0 {
				r.pos = r.pendingEnd
			}
			if it.skip != nil {
				return Event{}, it.skip
			}
			return it.event, nil
		}

		if r.done {
			return Event{}, io.EOF
		}
		if err := r.readItems(); err != nil {
			return Event{}, err
		}
	}
}

// readItems reads one line and fills r.pending with its events and skips.
func (r *Reader) readItems() error {
	lineStart := r.offset
	raw, terminated, err := r.readLine()
	if err != nil {
		return err
	}
	if raw == nil {
		r.done = true
		return nil
	}

	// A line still being written is not consumed. Position already
	// stays before it, so the next read starts at its first byte.
	if !terminated && r.follow {
		r.line--
		r.done = true
		return nil
	}

	// Lines up to a gzip resume point are read again only to rebuild the
	// header state, so they are not counted, just as a plain file seeks
	// past them.
	if r.offset > r.dropUntil {
		r.linesRead++
	}
	end := Position{Offset: r.offset, Line: r.line, HeaderOffset: r.headerOffset}

	var items []item
	if len(raw) > r.maxLine {
		items = []item{{skip: r.skipError(ReasonLineTooLong, fmt.Sprintf("line is longer than %d bytes", r.maxLine))}}
		r.prevHeader = false
	} else {
		items = r.parseLine(trimLine(raw), lineStart, &end)
	}

	// A line before the resume point only updates the header state.
	if r.offset <= r.dropUntil {
		items = nil
	}

	// An unterminated final line may still be growing, so the position
	// stays before it.
	if !terminated {
		end = r.pos
	}

	if len(items) == 0 {
		r.pos = end
		return nil
	}
	r.pending = items
	r.pendingEnd = end
	return nil
}

func (r *Reader) parseLine(line []byte, lineStart int64, end *Position) []item {
	if r.line == 1 {
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}

	if kind := r.parser.header(line); kind != dataLine {
		if kind == headerStart || !r.prevHeader {
			r.headerOffset = lineStart
			end.HeaderOffset = lineStart
		}
		r.prevHeader = true
		return nil
	}
	r.prevHeader = false

	var items []item
	err := r.parser.parse(line, func(f fields) {
		// Every format is checked here, after its parser has cut the
		// host out of a URL or host:port. A value such as ":8080" leaves
		// an empty host.
		if f.domain == "" {
			items = append(items, item{skip: r.skipError(ReasonMissingDomain, "host is empty once the port is removed")})
			return
		}
		if isIPAddress(f.domain) {
			items = append(items, item{skip: r.skipError(ReasonIPAddress, fmt.Sprintf("%s is an IP address, not a domain", f.domain))})
			return
		}
		items = append(items, item{event: Event{
			Domain:  f.domain,
			Machine: f.machine,
			Time:    f.time.UTC(),
			Line:    r.line,
			Offset:  r.offset,
		}})
	}, func(reason Reason, detail string) {
		items = append(items, item{skip: r.skipError(reason, detail)})
	})
	if err != nil {
		items = append(items, item{skip: r.skipError(ReasonMalformed, err.Error())})
	}
	return items
}

// readLine returns the next line including its line break, whether it
// ended with one, or nil at the end of input. A line longer than maxLine
// is consumed but only its first maxLine+1 bytes are returned.
func (r *Reader) readLine() ([]byte, bool, error) {
	var long []byte
	for {
		chunk, err := r.src.ReadSlice('\n')
		r.offset += int64(len(chunk))

		switch {
		case err == nil:
			r.line++
			if long == nil {
				return chunk, true, nil
			}
			return r.appendCapped(long, chunk), true, nil

		case errors.Is(err, bufio.ErrBufferFull):
			long = r.appendCapped(long, chunk)

		case errors.Is(err, io.EOF):
			line := r.appendCapped(long, chunk)
			if len(line) == 0 {
				return nil, false, nil
			}
			r.line++
			return line, false, nil

		default:
			return nil, false, fmt.Errorf("ingest: read %s after line %d: %w", r.displayName(), r.line, err)
		}
	}
}

// appendCapped appends chunk to buf, keeping at most maxLine+1 bytes so a
// huge line costs bounded memory but is still seen as too long.
func (r *Reader) appendCapped(buf, chunk []byte) []byte {
	room := r.maxLine + 1 - len(buf)
	if room <= 0 {
		return buf
	}
	if len(chunk) > room {
		chunk = chunk[:room]
	}
	if buf == nil {
		buf = make([]byte, 0, len(chunk))
	}
	return append(buf, chunk...)
}

func (r *Reader) skipError(reason Reason, detail string) *SkipError {
	return &SkipError{File: r.displayName(), Line: r.line, Reason: reason, Detail: detail}
}

func (r *Reader) displayName() string {
	if r.name == "" {
		return "input"
	}
	return r.name
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// trimLine removes the line break, LF or CRLF.
func trimLine(raw []byte) []byte {
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	return bytes.TrimSuffix(raw, []byte("\r"))
}
