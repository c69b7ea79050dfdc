package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Bucket layout of a Histogram, as in HdrHistogram: values below
// 2*subBuckets fall in buckets of width 1; above that, every power of two is
// split into subBuckets buckets of equal width, so a bucket is never wider
// than 1/subBuckets of its lower bound.
const (
	subBits    = 7
	subBuckets = 1 << subBits // 128: a relative error of at most 0.8%
	// numBuckets covers every non-negative int64: the largest value has 63
	// bits, a shift of 63-subBits-1.
	numBuckets = (63-subBits-1)*subBuckets + 2*subBuckets
)

// A Histogram counts durations in log-linear buckets, in fixed memory
// (57 KiB) however many it holds. A percentile it reports is the largest
// value of the bucket holding the value of that rank (at most the largest
// value recorded), so it is at or above the exact percentile and less than
// 1/128 (0.8%) above it, plus 1ns.
//
// Record may be called concurrently. The other methods must not run
// concurrently with Record: read a Histogram once recording has stopped.
type Histogram struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64 // nanoseconds; overflows after 292 years of latency
	max    atomic.Int64
}

// bucketOf returns the index of the bucket holding v ≥ 0.
func bucketOf(v int64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	return shift*subBuckets + int(v>>shift)
}

// bucketMax returns the largest value in bucket i.
func bucketMax(i int) int64 {
	if i < 2*subBuckets {
		return int64(i)
	}
	shift := i/subBuckets - 1
	lo := int64(i-shift*subBuckets) << shift
	return lo + (1 << shift) - 1
}

// Record adds d to h. A negative d counts as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of durations recorded.
func (h *Histogram) Count() int64 { return int64(h.n.Load()) }

// Max returns the largest duration recorded, or 0.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the durations recorded, or 0.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / int64(n))
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of the durations
// recorded: the duration at rank ⌈p/100 × count⌉ in ascending order, within
// the precision of the buckets. It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := percentileRank(p, int64(n))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= uint64(rank) {
			return time.Duration(min(bucketMax(i), h.max.Load()))
		}
	}
	return h.Max() // not reached: the counts add up to n
}

// percentileRank returns the 1-based rank of the p-th percentile of n values.
func percentileRank(p float64, n int64) int64 {
	rank := int64(math.Ceil(p / 100 * float64(n)))
	return min(max(rank, 1), n)
}

// Merge adds the durations recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
}

// Latency summarizes a Histogram.
func (h *Histogram) Latency() Latency {
	return Latency{
		P50:  h.Percentile(50),
		P90:  h.Percentile(90),
		P99:  h.Percentile(99),
		Max:  h.Max(),
		Mean: h.Mean(),
	}
}

// Latency is a summary of request latencies.
type Latency struct {
	P50, P90, P99, Max, Mean time.Duration
}
