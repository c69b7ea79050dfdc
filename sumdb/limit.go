package sumdb

import (
	"fmt"
	"math"
	"time"
)

// A rateLimitError refuses a lookup whose client has no fetch left.
type rateLimitError struct {
	retryAfter time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("too many new module versions requested from your address: retry in %d seconds", retrySeconds(e.retryAfter))
}

// retrySeconds returns d in whole seconds for Retry-After, rounded up, at
// least 1.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
