package komboemu

import (
	"net/http"
	"time"

	"github.com/kombosync/kombosync/kombo"
)

// Faults make the API unreliable the way Kombo and the tools behind it can be.
type Faults struct {
	ErrorRate     float64       // share of list requests answered 500 PLATFORM.UNKNOWN_ERROR
	RateLimitRate float64       // share answered 429 PLATFORM.RATE_LIMIT_EXCEEDED
	RetryAfter    time.Duration // Retry-After sent with those 429s; none when zero
	DropRate      float64       // share whose connection is cut in the middle of the answer
	Latency       time.Duration // added to every list answer
	Webhooks      WebhookFaults
}

// Fault is one forced failure of the next list request (QueueFaults).
type Fault string

const (
	FaultServerError       Fault = "server-error"        // 500 PLATFORM.UNKNOWN_ERROR
	FaultRemoteUnavailable Fault = "remote-unavailable"  // 503 REMOTE.SERVICE_UNAVAILABLE
	FaultRateLimit         Fault = "rate-limit"          // 429 PLATFORM.RATE_LIMIT_EXCEEDED, no Retry-After
	FaultRateLimitRetry    Fault = "rate-limit-retry"    // the same with Retry-After: 2
	FaultConcurrencyLimit  Fault = "concurrency-limit"   // 429 PLATFORM.CONCURRENCY_LIMIT_EXCEEDED
	FaultDrop              Fault = "drop"                // connection cut in the middle of the answer
	FaultBareGateway       Fault = "bare-503"            // a load balancer's 503 with an HTML body
	FaultTimeoutTask       Fault = "task-timed-out"      // 504 PLATFORM.TASK_TIMED_OUT
	FaultUnknownRemote     Fault = "remote-unknown-http" // 502 REMOTE.UNKNOWN_HTTP_ERROR
	FaultGarbage           Fault = "garbage"             // 200 with a body that is not JSON
)

// SetFaults replaces the random faults.
func (e *Emulator) SetFaults(f Faults) {
	e.mu.Lock()
	e.faults = f
	e.mu.Unlock()
	e.hooks.setFaults(f.Webhooks)
}

// QueueFaults makes the next list requests fail, one fault each, in order.
func (e *Emulator) QueueFaults(fs ...Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queued = append(e.queued, fs...)
}

// pickFault takes the next queued fault, or draws a random one, with the Retry-After of a random
// rate limit. Call with e.mu held.
func (e *Emulator) pickFault() (Fault, time.Duration) {
	if len(e.queued) > 0 {
		f := e.queued[0]
		e.queued = e.queued[1:]
		return f, 0
	}
	f := e.faults
	switch x := e.rng.Float64(); {
	case x < f.DropRate:
		return FaultDrop, 0
	case x < f.DropRate+f.ErrorRate:
		return FaultServerError, 0
	case x < f.DropRate+f.ErrorRate+f.RateLimitRate:
		return FaultRateLimit, f.RetryAfter
	}
	return "", 0
}

func faultError(f Fault) *apiError {
	switch f {
	case FaultServerError:
		return &apiError{status: 500, code: kombo.CodePlatformUnknownError, message: "An unknown error occurred."}
	case FaultRemoteUnavailable:
		return &apiError{status: 503, code: kombo.CodeRemoteServiceUnavailable, message: "The remote system is unavailable."}
	case FaultRateLimit:
		return &apiError{status: 429, code: kombo.CodeRateLimitExceeded, message: "Rate limit exceeded."}
	case FaultRateLimitRetry:
		return &apiError{status: 429, code: kombo.CodeRateLimitExceeded, message: "Rate limit exceeded.", retryAfter: 2 * time.Second}
	case FaultConcurrencyLimit:
		return &apiError{status: 429, code: kombo.CodeConcurrencyLimitExceeded, message: "Too many concurrent requests."}
	case FaultTimeoutTask:
		return &apiError{status: 504, code: kombo.CodeTaskTimedOut, message: "The task timed out."}
	case FaultUnknownRemote:
		return &apiError{status: 502, code: kombo.CodeRemoteUnknownHTTPError, message: "The remote system answered 500."}
	}
	return nil
}

// dropConnection cuts the connection in the middle of an answer. (Closing it before any byte
// would be invisible: Go's and most HTTP clients silently resend an idempotent GET then.)
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"status\":\"success\",\"data\":{\"next\":")
	_ = buf.Flush()
}
