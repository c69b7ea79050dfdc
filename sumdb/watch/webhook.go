package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/sumdb/sumdb/internal/guard"
)

// Defaults of a Webhook.
const (
	defaultWebhookAttempts = 5
	defaultWebhookBackoff  = time.Second
	defaultWebhookTimeout  = 30 * time.Second
	maxWebhookBackoff      = time.Minute
)

// A Webhook is a Sink that POSTs each alert, as a JSON object (Alert's
// JSON form, as WriterSink writes it), to a URL. A request that fails, or
// that is answered with a status other than 2xx, is tried again after a
// delay that doubles each time, up to Attempts times in all. The URL often
// holds a secret (a token in its path, its query or its user information):
// errors and log lines name only its scheme and host.
type Webhook struct {
	url    *url.URL
	client *guard.Client

	// Attempts is the number of requests per alert at most. Default 5.
	Attempts int
	// Backoff is the delay before the second attempt; it doubles for each
	// one after, up to a minute. Default 1s.
	Backoff time.Duration
	// Timeout bounds each request. Default 30s.
	Timeout time.Duration
	// Logger receives a line per failed attempt. Default: discard.
	Logger *slog.Logger
}

// NewWebhook returns a Webhook posting to rawURL, an http or https URL,
// with client (nil for http.DefaultClient's settings). The URL's user
// information, if any, is sent as Basic authentication.
func NewWebhook(rawURL string, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook URL: want an http or https URL with a host")
	}
	if client == nil {
		client = &http.Client{}
	}
	return &Webhook{url: u, client: guard.NewClient(client)}, nil
}

// shown is how messages name the webhook: its scheme and host, never the
// path, query or user information, which may hold its secret.
func (h *Webhook) shown() string { return h.url.Scheme + "://" + h.url.Host }

// Deliver posts each alert, in order, and returns the error of the first
// that could not be delivered.
func (h *Webhook) Deliver(ctx context.Context, alerts []Alert) error {
	for _, a := range alerts {
		body, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		if err := h.post(ctx, body); err != nil {
			return err
		}
	}
	return nil
}

// post posts body, retrying with exponential backoff.
func (h *Webhook) post(ctx context.Context, body []byte) error {
	attempts, backoff, logger := h.Attempts, h.Backoff, h.Logger
	if attempts <= 0 {
		attempts = defaultWebhookAttempts
	}
	if backoff <= 0 {
		backoff = defaultWebhookBackoff
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var err error
	for i := range attempts {
		if i > 0 {
			logger.WarnContext(ctx, "watch: webhook attempt failed", "webhook", h.shown(), "attempt", i, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("webhook %s: %w (after %v)", h.shown(), ctx.Err(), err)
			case <-t.C:
			}
			backoff = min(2*backoff, maxWebhookBackoff)
		}
		if err = h.once(ctx, body); err == nil {
			return nil
		}
	}
	return fmt.Errorf("webhook %s: %d attempts failed, the last: %w: check the URL and the receiving service", h.shown(), attempts, err)
}

// once makes one request.
func (h *Webhook) once(ctx context.Context, body []byte) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = defaultWebhookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *h.url
	u.User = nil
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot make the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sumdb-watch")
	guard.SetUserinfo(req, h.url.User)
	resp, err := h.client.Do(req)
	if err != nil {
		// The *url.Error repeats the URL: keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("POST: %v", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}
