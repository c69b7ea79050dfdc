package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Result holds the measurements of a Run.
type Result struct {
	Target      string
	Rate        float64 // requests per second on a schedule; 0 for flat out
	Concurrency int
	Mix         Mix
	Duration    time.Duration // planned
	Elapsed     time.Duration // from the start of the run to the last answer
	Warmup      int           // lookups through the Proxy before the run, not measured
	SizeBefore  int64         // tree size when the run began, after the warm-up
	SizeAfter   int64         // tree size when it ended; 0 if unknown
	// Late counts, on a schedule, the requests due before the end that were
	// not sent because Concurrency requests were in flight until the end.
	// Each counts in the Latency of its kind, not in its Requests: its
	// latency is its wait from when it was due until a slot was free after
	// the end, a lower bound of what it would have been.
	Late int64
	// Interrupted reports that the run ended early because its context did.
	Interrupted bool

	Total Stats
	Kinds [numKinds]Stats // by Kind
}

// Stats are the measurements of one kind of request, or of all.
type Stats struct {
	Requests int64 // sent and answered (or failed), after the warm-up
	Late     int64 // due but not sent, on a schedule: see Result.Late
	// Errors counts the failed requests by cause: the HTTP status of an
	// answer other than 200 ("503"), "invalid" for a 200 whose body is not
	// what was asked, "timeout" or "network".
	Errors     map[string]int64
	FirstError string  // the first failure, as an example
	Latency    Latency // of every request, failed and Late ones included
}

// Failed returns the number of failed requests.
func (s Stats) Failed() int64 {
	var n int64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// PerSecond returns the rate of the requests s counts over the run.
func (r *Result) PerSecond(s Stats) float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / r.Elapsed.Seconds()
}

// WriteText writes r as a table for people.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "target    %s\n", r.Target)
	if r.Rate > 0 {
		fmt.Fprintf(&b, "load      %g req/s on schedule (at most %d in flight) for %v, mix %v\n", r.Rate, r.Concurrency, r.Duration, r.Mix)
	} else {
		fmt.Fprintf(&b, "load      flat out, %d in flight, for %v, mix %v\n", r.Concurrency, r.Duration, r.Mix)
	}
	if r.SizeAfter > 0 {
		fmt.Fprintf(&b, "tree      %d → %d records (+%d)\n", r.SizeBefore, r.SizeAfter, r.SizeAfter-r.SizeBefore)
	} else {
		fmt.Fprintf(&b, "tree      %d records at the start\n", r.SizeBefore)
	}
	fmt.Fprintf(&b, "requests  %d in %.2fs: %.1f req/s, %d failed\n", r.Total.Requests, r.Elapsed.Seconds(), r.PerSecond(r.Total), r.Total.Failed())
	if r.Late > 0 {
		fmt.Fprintf(&b, "late      %d requests due were not sent: all %d were in flight (raise --concurrency, or lower the rate);\n", r.Late, r.Concurrency)
		fmt.Fprintf(&b, "          the latencies count them, with their wait until a slot was free after the end (a lower bound)\n")
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "          interrupted before the end\n")
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Kind names padded to one width, to read left-aligned.
	fmt.Fprintf(tw, "kind\trequests\treq/s\tfailed\tp50\tp90\tp99\tmax\t\n")
	row := func(name string, s Stats) {
		l := s.Latency
		fmt.Fprintf(tw, "%-4s\t%d\t%.1f\t%d\t%s\t%s\t%s\t%s\t\n", name, s.Requests, r.PerSecond(s), s.Failed(),
			formatDuration(l.P50), formatDuration(l.P90), formatDuration(l.P99), formatDuration(l.Max))
	}
	for k, s := range r.Kinds {
		if r.Mix.weight(Kind(k)) > 0 {
			row(Kind(k).String(), s)
		}
	}
	row("all", r.Total)
	tw.Flush()

	if r.Total.Failed() > 0 {
		b.WriteString("\nfailed:\n")
		for k, s := range r.Kinds {
			if s.Failed() == 0 {
				continue
			}
			var causes []string
			for _, c := range slices.Sorted(maps.Keys(s.Errors)) {
				causes = append(causes, fmt.Sprintf("%s ×%d", c, s.Errors[c]))
			}
			fmt.Fprintf(&b, "  %-4s  %s; first: %s\n", Kind(k), strings.Join(causes, ", "), s.FirstError)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatDuration formats d with 3 significant digits, as 1.23ms.
func formatDuration(d time.Duration) string {
	units := []struct {
		name string
		size time.Duration
	}{{"s", time.Second}, {"ms", time.Millisecond}, {"µs", time.Microsecond}}
	for _, u := range units {
		if d >= u.size {
			v := float64(d) / float64(u.size)
			switch {
			case v < 10:
				return fmt.Sprintf("%.2f%s", v, u.name)
			case v < 100:
				return fmt.Sprintf("%.1f%s", v, u.name)
			}
			return fmt.Sprintf("%.0f%s", v, u.name)
		}
	}
	return fmt.Sprintf("%dns", d)
}

// jsonResult is the JSON form of a Result: durations in seconds, latencies
// in milliseconds.
type jsonResult struct {
	Target         string               `json:"target"`
	Mode           string               `json:"mode"` // "flat-out" or "rate"
	Rate           float64              `json:"rate"`
	Concurrency    int                  `json:"concurrency"`
	Mix            map[string]int       `json:"mix"`
	DurationS      float64              `json:"duration_s"`
	ElapsedS       float64              `json:"elapsed_s"`
	Warmup         int                  `json:"warmup"`
	TreeSizeBefore int64                `json:"tree_size_before"`
	TreeSizeAfter  int64                `json:"tree_size_after"`
	Late           int64                `json:"late"`
	Interrupted    bool                 `json:"interrupted"`
	Total          jsonStats            `json:"total"`
	Kinds          map[string]jsonStats `json:"kinds"`
}

type jsonStats struct {
	Requests   int64            `json:"requests"`
	Late       int64            `json:"late"`
	PerSecond  float64          `json:"req_per_s"`
	Failed     int64            `json:"failed"`
	Errors     map[string]int64 `json:"errors"`
	FirstError string           `json:"first_error,omitempty"`
	LatencyMS  jsonLatency      `json:"latency_ms"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// WriteJSON writes r as one JSON object, for programs.
func (r *Result) WriteJSON(w io.Writer) error {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	stats := func(s Stats) jsonStats {
		errs := s.Errors
		if errs == nil {
			errs = map[string]int64{}
		}
		return jsonStats{
			Requests:   s.Requests,
			Late:       s.Late,
			PerSecond:  r.PerSecond(s),
			Failed:     s.Failed(),
			Errors:     errs,
			FirstError: s.FirstError,
			LatencyMS: jsonLatency{
				P50: ms(s.Latency.P50), P90: ms(s.Latency.P90), P99: ms(s.Latency.P99),
				Max: ms(s.Latency.Max), Mean: ms(s.Latency.Mean),
			},
		}
	}
	j := jsonResult{
		Target:         r.Target,
		Mode:           "flat-out",
		Rate:           r.Rate,
		Concurrency:    r.Concurrency,
		Mix:            map[string]int{"hit": r.Mix.Hit, "miss": r.Mix.Miss, "tile": r.Mix.Tile},
		DurationS:      r.Duration.Seconds(),
		ElapsedS:       r.Elapsed.Seconds(),
		Warmup:         r.Warmup,
		TreeSizeBefore: r.SizeBefore,
		TreeSizeAfter:  r.SizeAfter,
		Late:           r.Late,
		Interrupted:    r.Interrupted,
		Total:          stats(r.Total),
		Kinds:          make(map[string]jsonStats),
	}
	if r.Rate > 0 {
		j.Mode = "rate"
	}
	for k, s := range r.Kinds {
		j.Kinds[Kind(k).String()] = stats(s)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(j); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
