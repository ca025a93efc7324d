package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progressInterval is how often the progress bar is redrawn.
const progressInterval = 250 * time.Millisecond

// progressWidth is the number of cells in the bar.
const progressWidth = 30

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd()))
}

// progress draws a bar of bytes read out of the inputs' total size, with
// the rate of events recorded. It is safe for concurrent use.
type progress struct {
	out   io.Writer
	total int64

	// done is the size of the inputs finished, position the offset in
	// the current one.
	done     atomic.Int64
	position atomic.Int64
	events   atomic.Int64

	stopOnce sync.Once
	quit     chan struct{}
	finished chan struct{}
}

func newProgress(out io.Writer, total int64) *progress {
	return &progress{out: out, total: total, quit: make(chan struct{}), finished: make(chan struct{})}
}

func (p *progress) start() {
	go func() {
		defer close(p.finished)

		started := time.Now()
		ticker := time.NewTicker(progressInterval)
		defer ticker.Stop()
		for {
			select {
			case <-p.quit:
				p.draw(started)
				fmt.Fprintln(p.out)
				return
			case <-ticker.C:
				p.draw(started)
			}
		}
	}()
}

func (p *progress) stop() {
	p.stopOnce.Do(func() {
		close(p.quit)
		<-p.finished
	})
}

func (p *progress) draw(started time.Time) {
	read := p.done.Load() + p.position.Load()
	fraction := 1.0
	if p.total > 0 {
		fraction = min(float64(read)/float64(p.total), 1)
	}
	cells := int(fraction * progressWidth)
	rate := float64(p.events.Load()) / max(time.Since(started).Seconds(), 0.001)

	fmt.Fprintf(p.out, "\r[%s%s] %3.0f%%  %s / %s  %.0f events/s ",
		strings.Repeat("=", cells), strings.Repeat(" ", progressWidth-cells),
		fraction*100, formatBytes(read), formatBytes(p.total), rate)
}

// track returns f wrapped so that reads and seeks move the bar, and
// starts counting a new file.
func (p *progress) track(f *os.File) io.ReadSeeker {
	p.done.Add(p.position.Swap(0))
	return &trackedFile{f: f, p: p}
}

// addEvent counts one recorded event.
func (p *progress) addEvent() { p.events.Add(1) }

type trackedFile struct {
	f *os.File
	p *progress
}

func (t *trackedFile) Read(b []byte) (int, error) {
	n, err := t.f.Read(b)
	t.p.position.Add(int64(n))
	return n, err
}

func (t *trackedFile) Seek(offset int64, whence int) (int64, error) {
	pos, err := t.f.Seek(offset, whence)
	if err == nil {
		t.p.position.Store(pos)
	}
	return pos, err
}

func formatBytes(n int64) string {
	const unit = 1 << 20
	return fmt.Sprintf("%.1f MiB", float64(n)/unit)
}
