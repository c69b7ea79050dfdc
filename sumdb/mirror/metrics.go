package mirror

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a mirror's Prometheus metrics, each labelled {db}:
//
//	sumdb_mirror_requests_total{db,endpoint,source}   answers 200, by endpoint and source (store, upstream, stale)
//	sumdb_mirror_upstream_errors_total{db,reason}     upstream failures and refusals of its data
//	sumdb_mirror_fork{db}                             1 once the upstream was found to fork
//	sumdb_mirror_head_size{db}                        records in the newest verified head
//	sumdb_mirror_head_age_seconds{db}                 seconds since an upstream head was last verified
type metrics struct {
	requests       *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	fork           prometheus.Gauge
}

// newMetrics registers the metrics of m with reg.
func newMetrics(reg prometheus.Registerer, m *Mirror) (*metrics, error) {
	db := prometheus.Labels{"db": m.name}
	mm := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "sumdb_mirror_requests_total",
			Help:        "Requests of a mirrored checksum database answered 200, by endpoint and source: store, upstream (fetched and verified), stale (the store, the upstream having failed).",
			ConstLabels: db,
		}, []string{"endpoint", "source"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "sumdb_mirror_upstream_errors_total",
			Help:        "Failures to reach a mirrored checksum database (unavailable) and refusals of its data, by reason: signature, fork, tile, record, missing_tile.",
			ConstLabels: db,
		}, []string{"reason"}),
		fork: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "sumdb_mirror_fork",
			Help:        "1 once the mirrored checksum database signed a head that contradicts the verified one; the mirror then serves the verified tree only.",
			ConstLabels: db,
		}),
	}
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "sumdb_mirror_head_size",
		Help:        "Records in the newest verified head of a mirrored checksum database.",
		ConstLabels: db,
	}, func() float64 { return float64(m.Status().Size) })
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "sumdb_mirror_head_age_seconds",
		Help:        "Seconds since this process last verified a head of a mirrored checksum database; -1 if it never did.",
		ConstLabels: db,
	}, func() float64 {
		v := m.Status().Verified
		if v.IsZero() {
			return -1
		}
		return m.now().Sub(v).Seconds()
	})
	for _, r := range reasons {
		mm.upstreamErrors.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{mm.requests, mm.upstreamErrors, mm.fork, size, age} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return mm, nil
}

// request counts a request of endpoint answered 200 from source.
func (mm *metrics) request(endpoint, source string) {
	mm.requests.WithLabelValues(endpoint, source).Inc()
}
