package sumdb

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sumdb/sumdb/sumdb/fetch"
	"github.com/sumdb/sumdb/tlog"
)

// An endpoint is a kind of request, for the request metrics.
type endpoint uint8

// Endpoints; endpointNames are their values of the "endpoint" label.
const (
	endpointLookup endpoint = iota
	endpointLatest
	endpointTile
	endpointDataTile
	endpointHealthz
	endpointReadyz
	endpointOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"lookup", "latest", "tile", "data_tile", "healthz", "readyz", "other"}

// statusCodes are the status codes the server writes, each with a request
// counter of its own per endpoint; others are counted by class ("3xx").
var statusCodes = [...]int{200, 400, 401, 403, 404, 405, 429, 500, 502, 503, 504}

// fetchResult classifies the outcome of a fetch for the metrics, as the
// fetcher's log line does (fetch.Result); a record that the server refused
// is the upstream's error.
func fetchResult(err error) string {
	if errors.Is(err, errBadRecord) {
		return fetch.ResultUpstreamError
	}
	return fetch.Result(err)
}

// Metrics are the Prometheus metrics of a checksum database. Build them with
// NewMetrics, hand them to one Server (ServerConfig.Metrics) and have its log
// report its commits to ObserveCommit (tlog.Config.OnCommit):
//
//	sumdb_http_requests_total{endpoint,code}        requests answered
//	sumdb_http_request_duration_seconds{endpoint}   time to answer
//	sumdb_tree_size                                 records in the served tree
//	sumdb_sequencer_queue_length                    appends waiting for the sequencer
//	sumdb_sequencer_batch_records                   records per committed batch
//	sumdb_sequencer_commit_duration_seconds         store time of one batch commit
//	sumdb_upstream_fetches_total{result}            module versions fetched from the upstream
//	sumdb_upstream_fetch_duration_seconds           time to fetch one module version
//	sumdb_upstream_fetches_in_progress              fetches holding a slot (at most MaxFetches)
//	sumdb_rate_limited_requests_total               lookups refused by the per-client fetch rate limit
//	sumdb_not_found_cache_hits_total                lookups answered by the not-found cache
//	sumdb_store_unavailable_total                   requests answered 503 because the store did not answer
//	sumdb_tile_cache_hits_total                     tile requests answered from the cache of tiles
//	sumdb_tile_cache_misses_total                   tile requests read from the store
//	sumdb_tile_cache_bytes                          bytes held by the cache of tiles
//	sumdb_lookup_cache_hits_total                   lookups answered from the cache of records
//	sumdb_lookup_cache_bytes                        bytes held by the cache of records
//
// Endpoints are lookup, latest, tile, data_tile, healthz, readyz and other;
// fetch results are ok, not_found, invalid, upstream_error, timeout and error.
type Metrics struct {
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
	fetches          *prometheus.CounterVec
	fetchLatency     prometheus.Histogram
	fetching         prometheus.Gauge
	rateLimited      prometheus.Counter
	notFoundHits     prometheus.Counter
	storeUnavailable prometheus.Counter
	batchRecords     prometheus.Histogram
	commitLatency    prometheus.Histogram
	tileCacheHits    prometheus.Counter
	tileCacheMisses  prometheus.Counter
	lookupCacheHits  prometheus.Counter

	// The children of requests and latency that each request updates,
	// resolved once (the counters at their first use, so that no series
	// of zeros shows): a label lookup costs more than the update.
	requestsBy [numEndpoints][len(statusCodes)]atomic.Pointer[prometheus.Counter]
	latencyBy  [numEndpoints]prometheus.Observer

	log     atomic.Pointer[tlog.Log]    // set once by NewServer; read by the gauges at each scrape
	tiles   atomic.Pointer[tileCache]   // set once by NewServer; read by the gauges at each scrape
	records atomic.Pointer[recordCache] // likewise
}

// NewMetrics returns the metrics of a checksum database, registered with reg.
// It fails if reg already holds metrics of the same names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sumdb_http_requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sumdb_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by endpoint. A first lookup includes the upstream fetch and the commit.",
			// From a tile served from memory to a first lookup of a large module.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 150},
		}, []string{"endpoint"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sumdb_upstream_fetches_total",
			Help: "Module versions fetched from the upstream, by result: ok, not_found, invalid, upstream_error, timeout, error.",
		}, []string{"result"}),
		fetchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sumdb_upstream_fetch_duration_seconds",
			Help:    "Time to fetch, check and hash one module version from the upstream.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		fetching: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sumdb_upstream_fetches_in_progress",
			Help: "Upstream fetches in progress; at most --max-fetches.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_rate_limited_requests_total",
			Help: "Lookups answered 429 because their client exceeded its budget of upstream fetches.",
		}),
		notFoundHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_not_found_cache_hits_total",
			Help: "Lookups answered 404 from the cache of recent upstream not-found answers.",
		}),
		storeUnavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_store_unavailable_total",
			Help: "Requests answered 503 because the store was unreachable or did not answer in time.",
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sumdb_sequencer_batch_records",
			Help:    "Records per batch committed by the sequencer.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 to 4096, the default batch cap
		}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sumdb_sequencer_commit_duration_seconds",
			Help:    "Time the store took to commit one batch of records with its signed tree head.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		tileCacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_tile_cache_hits_total",
			Help: "Tile requests answered from the in-memory cache of tiles.",
		}),
		tileCacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_tile_cache_misses_total",
			Help: "Tile requests read from the store: the tile was not cached, or not as wide, or the cache is off.",
		}),
		lookupCacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sumdb_lookup_cache_hits_total",
			Help: "Lookups of logged records answered from the in-memory cache of records, without the store.",
		}),
	}
	treeSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sumdb_tree_size",
		Help: "Records in the tree of the newest signed head this process serves.",
	}, func() float64 {
		if l := m.log.Load(); l != nil {
			return float64(l.Head().Size)
		}
		return 0
	})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sumdb_sequencer_queue_length",
		Help: "Appends waiting for the sequencer; at --max-queue, first lookups are answered 503.",
	}, func() float64 {
		if l := m.log.Load(); l != nil {
			return float64(l.QueueLen())
		}
		return 0
	})
	tileCacheBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sumdb_tile_cache_bytes",
		Help: "Bytes of tiles held in memory; at most --tile-cache-size.",
	}, func() float64 {
		return float64(m.tiles.Load().Bytes())
	})
	lookupCacheBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sumdb_lookup_cache_bytes",
		Help: "Bytes of logged records held in memory for lookups; at most --lookup-cache-size.",
	}, func() float64 {
		return float64(m.records.Load().Bytes())
	})
	for e := range numEndpoints {
		m.latencyBy[e] = m.latency.WithLabelValues(endpointNames[e])
	}
	// Every result from the start, so that rates of rare results exist.
	for _, r := range []string{fetch.ResultOK, fetch.ResultNotFound, fetch.ResultInvalid, fetch.ResultForbidden, fetch.ResultRetryLater, fetch.ResultUpstreamError, fetch.ResultTimeout, fetch.ResultError} {
		m.fetches.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.latency, m.fetches, m.fetchLatency, m.fetching, m.rateLimited,
		m.notFoundHits, m.storeUnavailable, m.batchRecords, m.commitLatency, treeSize, queue,
		m.tileCacheHits, m.tileCacheMisses, tileCacheBytes, m.lookupCacheHits, lookupCacheBytes,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// ObserveCommit records a batch commit of the log: pass it as
// tlog.Config.OnCommit.
func (m *Metrics) ObserveCommit(records int, d time.Duration) {
	m.batchRecords.Observe(float64(records))
	m.commitLatency.Observe(d.Seconds())
}

// observeFetch records one upstream fetch.
func (m *Metrics) observeFetch(err error, d time.Duration) {
	m.fetches.WithLabelValues(fetchResult(err)).Inc()
	m.fetchLatency.Observe(d.Seconds())
}

// observeRequest records one answered request.
func (m *Metrics) observeRequest(e endpoint, code int, d time.Duration) {
	m.latencyBy[e].Observe(d.Seconds())
	for i, c := range statusCodes {
		if c == code {
			p := m.requestsBy[e][i].Load()
			if p == nil {
				// The first request of its kind. Two at once both
				// resolve the same child.
				n := m.requests.WithLabelValues(endpointNames[e], strconv.Itoa(code))
				p = &n
				m.requestsBy[e][i].Store(p)
			}
			(*p).Inc()
			return
		}
	}
	// The server writes few distinct codes; anything else is folded so
	// that the label set stays bounded whatever a handler does.
	m.requests.WithLabelValues(endpointNames[e], fmt.Sprintf("%dxx", code/100)).Inc()
}
