package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/sumdb/sumdb/internal/guard"
	cosign "github.com/sumdb/sumdb/sumdb/witness"
)

// maxWitnesses bounds --witness: a note holds at most 100 signatures, the
// log's own one of them.
const maxWitnesses = 50

// checkWitnesses checks the witnesses of --witness without the network:
// each "<witness verifier key> <URL>", with a valid key of a name of its
// own and an http or https URL. It fills cfg.witnessList.
func (cfg *ServeConfig) checkWitnesses(s *settings) error {
	if len(cfg.Witnesses) > maxWitnesses {
		return s.invalid("witness", "%d witnesses, want at most %d", len(cfg.Witnesses), maxWitnesses)
	}
	cfg.witnessList = nil
	for _, w := range cfg.Witnesses {
		f := strings.Fields(w)
		if len(f) != 2 {
			return s.invalid("witness", "%q: want \"<witness verifier key> <URL>\"", guard.RedactURL(w))
		}
		cfg.witnessList = append(cfg.witnessList, cosign.Witness{VKey: f[0], URL: f[1]})
	}
	if len(cfg.witnessList) == 0 {
		return nil
	}
	if err := cosign.Check(cfg.witnessList, 0); err != nil {
		return s.invalid("witness", "%v", err)
	}
	return nil
}

// withWitnessStatus returns a handler that answers /readyz as next does,
// followed by a line for each witness: the newest tree size it cosigned
// and when, or its last failure. A witness's trouble does not make the
// server unready: the log goes on without it.
func withWitnessStatus(next http.Handler, c *cosign.Cosigner, now func() time.Time) http.Handler {
	if c == nil {
		return next
	}
	return withReadyLines(next, func() []string {
		var lines []string
		for _, st := range c.Status() {
			lines = append(lines, witnessStatusLine(st, now()))
		}
		return lines
	})
}

// withReadyLines returns a handler that answers /readyz as next does,
// with the status and headers of next and the lines of more after its
// body, and any other request as next does.
func withReadyLines(next http.Handler, more func() []string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var b strings.Builder
		b.Write(bytes.TrimRight(rec.Body.Bytes(), "\n"))
		b.WriteString("\n")
		for _, line := range more() {
			b.WriteString(line)
			b.WriteString("\n")
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		w.WriteHeader(rec.Code)
		io.WriteString(w, b.String())
	})
}

// witnessStatusLine describes the state of a witness.
func witnessStatusLine(st cosign.WitnessStatus, now time.Time) string {
	line := "witness " + st.Name + ": "
	if st.Size == 0 {
		line += "no head cosigned yet"
	} else {
		line += fmt.Sprintf("cosigned tree size %d %s ago", st.Size, now.Sub(st.Cosigned).Round(time.Second))
	}
	if st.Err != nil {
		line += "; failing: " + clip(st.Err.Error(), 200)
	}
	return line
}
