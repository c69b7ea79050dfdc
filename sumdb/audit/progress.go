package audit

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ttyInterval is the time between two updates of a progress line on a terminal.
const ttyInterval = 250 * time.Millisecond

// A meter writes progress lines while the clone runs: records done of the
// total, the rate, and the time left.
type meter struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	start    time.Time
	from     int64 // records in the clone when the meter started
	total    int64 // records in the clone when it is done
	done     atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startMeter starts a meter for a clone from from to total records; it
// writes nothing if w is nil.
func startMeter(w io.Writer, interval time.Duration, from, total int64) *meter {
	m := &meter{w: w, interval: interval, start: time.Now(), from: from, total: total, stop: make(chan struct{})}
	m.done.Store(from)
	if w == nil {
		return m
	}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			m.tty, m.interval = true, ttyInterval
		}
	}
	m.wg.Go(func() {
		t := time.NewTicker(m.interval)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				m.print(false)
			}
		}
	})
	return m
}

// set records that the clone holds n verified records.
func (m *meter) set(n int64) { m.done.Store(n) }

// finish stops the meter and writes a last line.
func (m *meter) finish() {
	if m.w == nil {
		return
	}
	close(m.stop)
	m.wg.Wait()
	m.print(true)
}

func (m *meter) print(last bool) {
	done := m.done.Load()
	elapsed := time.Since(m.start)
	rate := float64(done-m.from) / elapsed.Seconds()
	line := fmt.Sprintf("audit: %d of %d records verified (%.1f%%), %.0f records/s", done, m.total, 100*float64(done)/float64(max(m.total, 1)), rate)
	if !last && rate > 0 && done < m.total {
		eta := time.Duration(float64(m.total-done) / rate * float64(time.Second))
		line += fmt.Sprintf(", %v left", eta.Round(time.Second))
	}
	if last {
		line += fmt.Sprintf(", in %v", elapsed.Round(time.Millisecond))
	}
	switch {
	case m.tty && last:
		fmt.Fprintf(m.w, "\r%s\x1b[K\n", line)
	case m.tty:
		fmt.Fprintf(m.w, "\r%s\x1b[K", line)
	default:
		fmt.Fprintln(m.w, line)
	}
}
