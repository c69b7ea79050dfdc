package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestLoadBuckets checks that the buckets tile the non-negative int64s: each
// bucket's largest value is in it, and the next value in the next bucket.
func TestLoadBuckets(t *testing.T) {
	for i := range numBuckets {
		hi := bucketMax(i)
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(bucketMax(%d) = %d) = %d, want %d", i, hi, got, i)
		}
		if i == numBuckets-1 {
			if hi != math.MaxInt64 {
				t.Fatalf("bucketMax(%d) = %d, want MaxInt64", i, hi)
			}
			break
		}
		if got := bucketOf(hi + 1); got != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi+1, got, i+1)
		}
		// The precision promised: a bucket is at most 1/128 of its values wide.
		lo := int64(0)
		if i > 0 {
			lo = bucketMax(i-1) + 1
		}
		if width := hi - lo + 1; lo >= 2*subBuckets && float64(width) > float64(lo)/subBuckets {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/%d of %d", i, lo, hi, subBuckets, lo)
		}
	}
}

// TestLoadPercentileOracle compares Histogram percentiles with the exact ones of
// a sorted slice.
func TestLoadPercentileOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		n    int
		gen  func() time.Duration
	}{
		{"one", 1, func() time.Duration { return 1234567 }},
		{"same", 1000, func() time.Duration { return 5 * time.Millisecond }},
		{"small", 1000, func() time.Duration { return time.Duration(rng.IntN(300)) }},
		{"uniform", 10000, func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) }},
		// Latencies spread over seven decades, from 100ns to 1000s.
		{"log-uniform", 20000, func() time.Duration { return time.Duration(math.Pow(10, 2+rng.Float64()*10)) }},
		{"long tail", 10000, func() time.Duration {
			if rng.IntN(100) == 0 {
				return time.Duration(rng.Int64N(int64(10 * time.Second)))
			}
			return time.Millisecond + time.Duration(rng.Int64N(int64(time.Millisecond)))
		}},
		{"zero and negative", 100, func() time.Duration { return time.Duration(rng.IntN(3) - 1) }},
	}
	ps := []float64{0.1, 1, 10, 50, 90, 99, 99.9, 100}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, d.n)
			for i := range vals {
				v := d.gen()
				h.Record(v)
				vals[i] = max(v, 0)
			}
			slices.Sort(vals)
			if got := h.Count(); got != int64(d.n) {
				t.Errorf("Count() = %d, want %d", got, d.n)
			}
			if got, want := h.Max(), vals[len(vals)-1]; got != want {
				t.Errorf("Max() = %v, want %v", got, want)
			}
			var sum time.Duration
			for _, v := range vals {
				sum += v
			}
			if got, want := h.Mean(), sum/time.Duration(d.n); got != want {
				t.Errorf("Mean() = %v, want %v", got, want)
			}
			for _, p := range ps {
				// The nearest-rank definition: the smallest value with at
				// least p% of the values at or below it.
				rank := max(int(math.Ceil(p/100*float64(d.n))), 1)
				want := vals[rank-1]
				got := h.Percentile(p)
				if got < want || float64(got) > float64(want)*(1+1.0/subBuckets)+1 {
					t.Errorf("Percentile(%v) = %v, want %v (to within 1/%d above)", p, got, want, subBuckets)
				}
			}
		})
	}
}

func TestLoadHistogramEmpty(t *testing.T) {
	var h Histogram
	if got := h.Latency(); got != (Latency{}) {
		t.Errorf("Latency() of an empty histogram = %+v, want zeros", got)
	}
}

// TestLoadHistogramConcurrent records from many goroutines and merges, and
// checks that nothing is lost.
func TestLoadHistogramConcurrent(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				a.Record(time.Duration(g*1000 + i))
			}
		})
	}
	wg.Wait()
	b.Record(time.Hour)
	b.Merge(&a)
	if got := b.Count(); got != 8001 {
		t.Errorf("Count() = %d, want 8001", got)
	}
	if got := b.Max(); got != time.Hour {
		t.Errorf("Max() = %v, want 1h", got)
	}
	if got := b.Percentile(50); got < 4000 || got > 4032 {
		t.Errorf("Percentile(50) = %v, want about 4µs", got)
	}
	if l := b.Latency(); !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("Latency() = %+v, want p50 ≤ p90 ≤ p99 ≤ max", l)
	}
}
