package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
)

// Application error types of FetchEndpoint, for the workflow to branch on with
// errors.As(err, &appErr) and appErr.Type().
const (
	// ErrFirstSyncPending: the integration's first Kombo sync has not finished. Not retryable:
	// the workflow waits on a durable timer or for sync-finished, then tries again.
	ErrFirstSyncPending = "FirstSyncPending"
	// ErrAuthFailed: the API key or the integration's credentials are invalid or lack a
	// permission. Not retryable: someone has to fix them.
	ErrAuthFailed = "AuthFailed"
	// ErrIntegrationUnavailable: the integration is unknown, inactive, or its setup is not
	// complete. Not retryable.
	ErrIntegrationUnavailable = "IntegrationUnavailable"
	// ErrInvalidInput: Kombo rejected the request. Not retryable.
	ErrInvalidInput = "InvalidInput"
	// ErrRateLimited: retryable, after Kombo's Retry-After when it sent one.
	ErrRateLimited = "RateLimited"
	// ErrKomboUnavailable: 5xx, timeouts, dropped connections. Retryable.
	ErrKomboUnavailable = "KomboUnavailable"
	// ErrKombo: any other error answer. Not retryable.
	ErrKombo = "KomboError"
	// ErrDataError: the same data fails every attempt: a page that is not JSON, or one
	// PostgreSQL refuses (SQLSTATE classes 22 and 23). Not retryable: the run ends as failed and
	// the workflow says so instead of retrying for ever.
	ErrDataError = "DataError"
)

// ErrorDetails travel with FetchEndpoint's application errors.
type ErrorDetails struct {
	Code   string // Kombo's error.code
	LogURL string // Kombo's log_url
}

// fail turns a pass's error into the activity's outcome: a typed result for a model the
// integration does not offer, else an application error of the types above, retryable or not.
// Application errors are returned unwrapped so their type, flag and delay reach the workflow.
// lastAttempt ends the run as failed even for a retryable error: no retry follows.
func (a *Activities) fail(ctx context.Context, run store.Run, err error, lastAttempt bool) (FetchEndpointResult, error) {
	var apiErr *kombo.APIError
	if errors.As(err, &apiErr) && apiErr.Class == kombo.ClassModelUnavailable {
		if err := a.Store.FinishModelUnavailable(ctx, run, apiErr.Error()); err != nil {
			return FetchEndpointResult{}, err
		}
		return FetchEndpointResult{Outcome: store.OutcomeModelUnavailable}, nil
	}
	appErr := classify(err)
	var te *temporal.ApplicationError
	final := (errors.As(appErr, &te) && te.NonRetryable()) || lastAttempt
	errType := ""
	if te != nil {
		errType = te.Type()
	}
	if recErr := a.Store.FailRun(context.WithoutCancel(ctx), run.ID, errType, err, final); recErr != nil {
		activity.GetLogger(ctx).Warn("could not record the pass's error", "run_id", run.ID, "error", recErr)
	}
	return FetchEndpointResult{}, appErr
}

// classify maps an error to a Temporal application error (or returns it as it is when it is
// neither Kombo's nor the data's: Postgres and context errors are retried by the activity's
// retry policy).
func classify(err error) error {
	var apiErr *kombo.APIError
	if errors.As(err, &apiErr) {
		details := ErrorDetails{Code: apiErr.Code, LogURL: apiErr.LogURL}
		msg := err.Error()
		switch apiErr.Class {
		case kombo.ClassFirstSyncPending:
			return temporal.NewNonRetryableApplicationError(msg, ErrFirstSyncPending, nil, details)
		case kombo.ClassAuth:
			return temporal.NewNonRetryableApplicationError(msg, ErrAuthFailed, nil, details)
		case kombo.ClassIntegrationUnavailable:
			return temporal.NewNonRetryableApplicationError(msg, ErrIntegrationUnavailable, nil, details)
		case kombo.ClassInvalidInput:
			return temporal.NewNonRetryableApplicationError(msg, ErrInvalidInput, nil, details)
		case kombo.ClassRateLimited:
			return temporal.NewApplicationErrorWithOptions(msg, ErrRateLimited, temporal.ApplicationErrorOptions{
				NextRetryDelay: apiErr.RetryAfter, Details: []any{details}})
		}
		if apiErr.Retryable() {
			return temporal.NewApplicationError(msg, ErrKomboUnavailable, details)
		}
		return temporal.NewNonRetryableApplicationError(msg, ErrKombo, nil, details)
	}
	var te *kombo.TransportError
	if errors.As(err, &te) {
		return temporal.NewApplicationError(err.Error(), ErrKomboUnavailable)
	}
	if errors.Is(err, store.ErrRunNotOpen) {
		// Another attempt finished the run: this one is a zombie and stops.
		return temporal.NewNonRetryableApplicationError(err.Error(), "RunNotOpen", nil)
	}
	if isDataError(err) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrDataError, nil)
	}
	return fmt.Errorf("fetch endpoint: %w", err)
}

// isDataError: the error is the data's, and another attempt on the same data fails the same way.
func isDataError(err error) bool {
	var de *kombo.DecodeError
	if errors.As(err, &de) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		class := pgErr.SQLState()[:2]
		return class == "22" || class == "23" // data exception, integrity constraint violation
	}
	return false
}
