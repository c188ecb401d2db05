package kombo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrorClass is what an API error means for a sync, derived from Kombo's error.code (the HTTP
// status and message are not stable) and, for bodies without a code, from the status.
type ErrorClass string

const (
	// ClassFirstSyncPending: the integration's first Kombo sync has not finished
	// (INTEGRATION.SETUP_SYNC_PENDING, HTTP 503 before 2026-05-19 and 409 since). Wait, then retry.
	ClassFirstSyncPending ErrorClass = "first_sync_pending"
	// ClassAuth: the API key or the integration's credentials are invalid or lack a permission.
	ClassAuth ErrorClass = "auth"
	// ClassIntegrationUnavailable: the integration does not exist, is inactive, or its setup is
	// incomplete or failed QA. A human has to act.
	ClassIntegrationUnavailable ErrorClass = "integration_unavailable"
	// ClassModelUnavailable: the endpoint's model is not available or disabled for this
	// integration. Skip the endpoint; the others are unaffected.
	ClassModelUnavailable ErrorClass = "model_unavailable"
	// ClassInvalidInput: the request was rejected as invalid (also an expired cursor).
	ClassInvalidInput ErrorClass = "invalid_input"
	// ClassRateLimited: Kombo's or the remote system's rate or concurrency limit.
	ClassRateLimited ErrorClass = "rate_limited"
	// ClassUnavailable: Kombo or the remote system is temporarily unavailable (5xx).
	ClassUnavailable ErrorClass = "unavailable"
	// ClassUnknown: anything else.
	ClassUnknown ErrorClass = "unknown"
)

// Error codes of Kombo's error envelope that kombosync branches on.
const (
	CodeSetupSyncPending         = "INTEGRATION.SETUP_SYNC_PENDING"
	CodeSetupIncomplete          = "INTEGRATION.SETUP_INCOMPLETE"
	CodeQAFailed                 = "INTEGRATION.QA_FAILED"
	CodePlatformAuthInvalid      = "PLATFORM.AUTHENTICATION_INVALID"
	CodeIntegrationAuthInvalid   = "INTEGRATION.AUTHENTICATION_INVALID"
	CodePermissionMissing        = "INTEGRATION.PERMISSION_MISSING"
	CodeIPNotWhitelisted         = "PLATFORM.IP_NOT_WHITELISTED"
	CodeIntegrationNotFound      = "PLATFORM.INTEGRATION_NOT_FOUND"
	CodeIntegrationInactive      = "INTEGRATION.INACTIVE"
	CodeModelNotAvailable        = "INTEGRATION.MODEL_NOT_AVAILABLE"
	CodeModelDisabled            = "INTEGRATION.MODEL_DISABLED"
	CodeInputInvalid             = "PLATFORM.INPUT_INVALID"
	CodeRemoteInputInvalid       = "REMOTE.INPUT_INVALID"
	CodeRateLimitExceeded        = "PLATFORM.RATE_LIMIT_EXCEEDED"
	CodeConcurrencyLimitExceeded = "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED"
	CodeRemoteRateLimitExceeded  = "REMOTE.RATE_LIMIT_EXCEEDED"
	CodeRemoteServiceUnavailable = "REMOTE.SERVICE_UNAVAILABLE"
	CodeTaskTimedOut             = "PLATFORM.TASK_TIMED_OUT"
	CodePlatformUnknownError     = "PLATFORM.UNKNOWN_ERROR"
	CodeRemoteUnknownHTTPError   = "REMOTE.UNKNOWN_HTTP_ERROR"
)

var classByCode = map[string]ErrorClass{
	CodeSetupSyncPending:         ClassFirstSyncPending,
	CodePlatformAuthInvalid:      ClassAuth,
	CodeIntegrationAuthInvalid:   ClassAuth,
	CodePermissionMissing:        ClassAuth,
	CodeIPNotWhitelisted:         ClassAuth,
	CodeIntegrationNotFound:      ClassIntegrationUnavailable,
	CodeIntegrationInactive:      ClassIntegrationUnavailable,
	CodeSetupIncomplete:          ClassIntegrationUnavailable,
	CodeQAFailed:                 ClassIntegrationUnavailable,
	CodeModelNotAvailable:        ClassModelUnavailable,
	CodeModelDisabled:            ClassModelUnavailable,
	CodeInputInvalid:             ClassInvalidInput,
	CodeRemoteInputInvalid:       ClassInvalidInput,
	CodeRateLimitExceeded:        ClassRateLimited,
	CodeConcurrencyLimitExceeded: ClassRateLimited,
	CodeRemoteRateLimitExceeded:  ClassRateLimited,
	CodeRemoteServiceUnavailable: ClassUnavailable,
	CodeTaskTimedOut:             ClassUnavailable,
	CodePlatformUnknownError:     ClassUnavailable,
	CodeRemoteUnknownHTTPError:   ClassUnknown,
}

// APIError is an error answer of Kombo's API.
type APIError struct {
	StatusCode int
	Code       string // error.code; empty in old message-only bodies
	Title      string
	Message    string
	LogURL     string
	Class      ErrorClass
	// RetryAfter is the Retry-After header's delay, when Kombo sent one.
	RetryAfter time.Duration
	// ConcurrencyLimit and ConcurrencyRemaining are the integration's concurrency headers of a
	// write's answer (-1 when absent).
	ConcurrencyLimit, ConcurrencyRemaining int
	// CursorRejected: the request carried a cursor and was rejected as invalid input, so the
	// cursor has expired or is unknown; restart the pass from the beginning.
	CursorRejected bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kombo: %d", e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.LogURL != "" {
		fmt.Fprintf(&b, " (log %s)", e.LogURL)
	}
	return b.String()
}

// Retryable says whether the same request may succeed later without anyone acting: rate
// limits and temporary unavailability. First-sync-pending is not retryable in this sense: it
// calls for a long, deliberate wait (see ClassFirstSyncPending), not a quick retry.
func (e *APIError) Retryable() bool {
	switch e.Class {
	case ClassRateLimited, ClassUnavailable:
		return true
	case ClassUnknown:
		return e.StatusCode >= 500
	default:
		return false
	}
}

// ClassOf returns the class of an *APIError in err's chain, or "" for other errors.
func ClassOf(err error) ErrorClass {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Class
	}
	return ""
}

// IsRetryable says whether err is worth retrying: a retryable API error, or a transport
// failure (timeout, refused or reset connection, truncated body). A cancelled context is not.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Retryable()
	}
	var transport *TransportError
	return errors.As(err, &transport)
}

// TransportError is a failure below HTTP semantics: the request did not get a complete answer.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return "kombo: " + e.Op + ": " + e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a timeout.
func (e *TransportError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// errorEnvelope is {"status":"error","error":{...}}; old answers had only {"message": "..."}.
type errorEnvelope struct {
	Status string `json:"status"`
	Error  *struct {
		Code    *string `json:"code"`
		Title   *string `json:"title"`
		Message string  `json:"message"`
		LogURL  *string `json:"log_url"`
	} `json:"error"`
	Message string `json:"message"`
}

// parseAPIError builds the error of a non-2xx answer.
func parseAPIError(resp *http.Response, body []byte, now time.Time) *APIError {
	e := &APIError{StatusCode: resp.StatusCode}
	var env errorEnvelope
	if json.Unmarshal(body, &env) == nil {
		if env.Error != nil {
			e.Code = deref(env.Error.Code)
			e.Title = deref(env.Error.Title)
			e.Message = env.Error.Message
			e.LogURL = deref(env.Error.LogURL)
		} else {
			e.Message = env.Message
		}
	}
	if e.Message == "" && e.Code == "" {
		e.Message = strings.TrimSpace(truncate(string(body), 200))
	}
	e.Class = classify(e.StatusCode, e.Code, e.Message)
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	e.ConcurrencyLimit, e.ConcurrencyRemaining = headerInt(resp.Header, "Concurrency-Limit"), headerInt(resp.Header, "Concurrency-Remaining")
	return e
}

func classify(status int, code, message string) ErrorClass {
	if c, ok := classByCode[code]; ok {
		return c
	}
	if code != "" {
		// A code this client does not know yet: trust only its family.
		switch {
		case strings.HasSuffix(code, "RATE_LIMIT_EXCEEDED"):
			return ClassRateLimited
		case strings.HasSuffix(code, "AUTHENTICATION_INVALID"):
			return ClassAuth
		}
		return ClassUnknown
	}
	// Old message-only bodies, or a proxy's answer.
	lower := strings.ToLower(message)
	switch {
	case (status == http.StatusServiceUnavailable || status == http.StatusConflict) && strings.Contains(lower, "first sync"):
		return ClassFirstSyncPending
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassAuth
	case status == http.StatusBadRequest:
		return ClassInvalidInput
	case status >= 500:
		return ClassUnavailable
	}
	return ClassUnknown
}

// parseRetryAfter reads delay-seconds or an HTTP date; anything else is no delay.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
