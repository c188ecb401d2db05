package kombo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Kombo's ATS error codes of writes (branch on error.code; their HTTP statuses are not documented).
const (
	CodeJobClosed                = "ATS.JOB_CLOSED"
	CodeApplicationAlreadyExists = "ATS.APPLICATION_ALREADY_EXISTS"
	CodeActionNotAvailable       = "INTEGRATION.ACTION_NOT_AVAILABLE"
	CodeActionDisabled           = "INTEGRATION.ACTION_DISABLED"
)

// WriteAnswer is the 2xx answer of a write ("action"): its data, Kombo's warnings, and the
// integration's concurrency headers (-1 when absent).
type WriteAnswer struct {
	Data                 json.RawMessage
	Warnings             []string
	ConcurrencyLimit     int
	ConcurrencyRemaining int
}

// Write sends one write to Kombo: method on the path built from the segments (each escaped), with
// a JSON body. Writes are synchronous and take no idempotency key: a *TransportError or a
// context error means the outcome is unknown (Kombo may have finished the write). The request
// counts against the client's pace like every other.
func (c *Client) Write(ctx context.Context, integrationID, method string, body []byte, segments ...string) (WriteAnswer, error) {
	answer, header, err := c.doHeaders(ctx, method, c.pathURL(segments...), integrationID, body)
	w := WriteAnswer{ConcurrencyLimit: headerInt(header, "Concurrency-Limit"), ConcurrencyRemaining: headerInt(header, "Concurrency-Remaining")}
	if err != nil {
		return w, fmt.Errorf("%s %s: %w", method, "/"+strings.Join(segments[:min(2, len(segments))], "/"), err)
	}
	var out struct {
		Status   string          `json:"status"`
		Data     json.RawMessage `json:"data"`
		Warnings []struct {
			Message string `json:"message"`
		} `json:"warnings"`
	}
	if err := json.Unmarshal(answer, &out); err != nil || out.Status != "success" {
		return w, &DecodeError{fmt.Errorf("%s: not a success answer", method)}
	}
	w.Data = out.Data
	for _, x := range out.Warnings {
		w.Warnings = append(w.Warnings, x.Message)
	}
	return w, nil
}

// pathURL is the base URL with the escaped segments appended. An id may hold any character
// (remote:<id> of a tool's own ids): each segment is escaped on its own, so a '/' stays in it.
func (c *Client) pathURL(segments ...string) string {
	u := *c.base
	raw := u.EscapedPath()
	for _, s := range segments {
		raw += "/" + url.PathEscape(s)
		u.Path += "/" + s
	}
	u.RawPath = raw
	return u.String()
}

func headerInt(h http.Header, name string) int {
	if h == nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(h.Get(name)))
	if err != nil {
		return -1
	}
	return n
}

// FoundApplication is an application found at Kombo when looking for what a lost answer did.
type FoundApplication struct {
	ID          string
	CandidateID string
	JobID       string
	JobRemoteID string
	StageID     string
	Outcome     string
	Rejected    bool // declined, or rejected_at set
}

// FindApplications looks for the applications of the candidates with that email to a job (a
// Kombo id, or remote:<id>): GET /ats/candidates?email=…&job_ids=… and their applications.
// Kombo's reads may lag its writes by seconds: nothing found is not proof of absence yet.
func (c *Client) FindApplications(ctx context.Context, integrationID, email, jobID string) ([]FoundApplication, error) {
	filters := map[string][]string{"email": {email}}
	remoteID, byRemote := strings.CutPrefix(jobID, "remote:")
	if !byRemote {
		filters["job_ids"] = []string{jobID}
	}
	var found []FoundApplication
	p := ListParams{PageSize: 50, Filters: filters}
	for page, err := range c.Pages(ctx, integrationID, Endpoint{Category: CategoryATS, Name: "candidates"}, p) {
		if err != nil {
			return nil, fmt.Errorf("find applications: %w", err)
		}
		for _, r := range page.Records {
			var cand struct {
				ID           string `json:"id"`
				Applications []struct {
					ID           string  `json:"id"`
					Outcome      *string `json:"outcome"`
					RejectedAt   *string `json:"rejected_at"`
					CurrentStage *struct {
						ID string `json:"id"`
					} `json:"current_stage"`
					Job *struct {
						ID       string  `json:"id"`
						RemoteID *string `json:"remote_id"`
					} `json:"job"`
				} `json:"applications"`
			}
			if err := json.Unmarshal(r.Raw, &cand); err != nil {
				continue
			}
			for _, a := range cand.Applications {
				if a.Job == nil {
					continue
				}
				fa := FoundApplication{ID: a.ID, CandidateID: cand.ID, JobID: a.Job.ID, JobRemoteID: deref(a.Job.RemoteID),
					Outcome: deref(a.Outcome), Rejected: a.RejectedAt != nil || deref(a.Outcome) == "DECLINED"}
				if a.CurrentStage != nil {
					fa.StageID = a.CurrentStage.ID
				}
				if (byRemote && fa.JobRemoteID == remoteID) || (!byRemote && fa.JobID == jobID) {
					found = append(found, fa)
				}
			}
		}
	}
	return found, nil
}

// GetApplication reads one application (GET /ats/applications?ids=…). found is false when Kombo
// has none with that id (Kombo answers an unknown id in ids with an error).
func (c *Client) GetApplication(ctx context.Context, integrationID, id string) (FoundApplication, bool, error) {
	page, err := c.ListPage(ctx, integrationID, Endpoint{Category: CategoryATS, Name: "applications"},
		ListParams{PageSize: 1, Filters: map[string][]string{"ids": {id}}})
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		return FoundApplication{}, false, nil
	}
	if err != nil {
		return FoundApplication{}, false, fmt.Errorf("get application: %w", err)
	}
	for _, r := range page.Records {
		var a struct {
			ID             string  `json:"id"`
			CandidateID    *string `json:"candidate_id"`
			JobID          *string `json:"job_id"`
			CurrentStageID *string `json:"current_stage_id"`
			Outcome        *string `json:"outcome"`
			RejectedAt     *string `json:"rejected_at"`
		}
		if json.Unmarshal(r.Raw, &a) != nil || a.ID != id {
			continue
		}
		return FoundApplication{ID: a.ID, CandidateID: deref(a.CandidateID), JobID: deref(a.JobID), StageID: deref(a.CurrentStageID),
			Outcome: deref(a.Outcome), Rejected: a.RejectedAt != nil || deref(a.Outcome) == "DECLINED"}, true, nil
	}
	return FoundApplication{}, false, nil
}

// Attachment is an attachment of an application at Kombo.
type Attachment struct {
	ID       string `json:"id"`
	FileName string `json:"file_name"`
	Type     string `json:"type"`
}

// ApplicationAttachments lists an application's attachments (GET /ats/applications/{id}/attachments).
func (c *Client) ApplicationAttachments(ctx context.Context, integrationID, applicationID string) ([]Attachment, error) {
	body, _, err := c.doHeaders(ctx, http.MethodGet, c.pathURL("ats", "applications", applicationID, "attachments"), integrationID, nil)
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	var out struct {
		Status string `json:"status"`
		Data   struct {
			Results []Attachment `json:"results"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Status != "success" {
		return nil, &DecodeError{errors.New("list attachments: not a success answer")}
	}
	return out.Data.Results, nil
}
