package backoffice

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/kombosync/kombosync/outbound"
	"github.com/kombosync/kombosync/store"
)

// The subscription routes (README "Outbound webhooks").

// subscriptionView is a subscription as the API shows it: no secrets, but how many sign.
type subscriptionView struct {
	store.Subscription
	Secrets int `json:"secrets"`
}

func view(s store.Subscription) subscriptionView {
	if s.EventTypes == nil {
		s.EventTypes = []string{}
	}
	return subscriptionView{Subscription: s, Secrets: len(s.Secrets)}
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	subs, err := a.subs.Store.ListSubscriptions(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := page[subscriptionView]{Data: []subscriptionView{}}
	for _, s := range subs {
		out.Data = append(out.Data, view(s))
	}
	writeJSON(w, http.StatusOK, out)
}

type createRequest struct {
	URL           string   `json:"url"`
	EventTypes    []string `json:"event_types"`
	IntegrationID string   `json:"integration_id"`
	Description   string   `json:"description"`
	Secret        string   `json:"secret"`
}

// withSecret is a subscription with its new secret, shown on creation and rotation only.
type withSecret struct {
	Subscription subscriptionView `json:"subscription"`
	Secret       string           `json:"secret"`
}

func (a *API) createSubscription(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.URL == "" {
		writeError(w, http.StatusBadRequest, "invalid", "url is required")
		return
	}
	sub, secret, err := a.subs.Create(r.Context(), store.SubscriptionSpec{URL: req.URL, Secret: req.Secret,
		EventTypes: req.EventTypes, IntegrationID: req.IntegrationID, Description: req.Description})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "subscription created", "subscription_id", sub.ID)
	writeJSON(w, http.StatusCreated, withSecret{Subscription: view(sub), Secret: secret})
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) {
	sub, err := a.subs.Store.GetSubscription(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(sub))
}

type updateRequest struct {
	URL           *string   `json:"url"`
	EventTypes    *[]string `json:"event_types"`
	IntegrationID *string   `json:"integration_id"`
	Description   *string   `json:"description"`
}

func (a *API) updateSubscription(w http.ResponseWriter, r *http.Request) {
	var req updateRequest
	if !decode(w, r, &req, false) {
		return
	}
	sub, err := a.subs.Update(r.Context(), mux.Vars(r)["id"], store.SubscriptionPatch{URL: req.URL, EventTypes: req.EventTypes,
		IntegrationID: req.IntegrationID, Description: req.Description})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(sub))
}

func (a *API) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := a.subs.Delete(r.Context(), mux.Vars(r)["id"]); err != nil && !isWakeOnly(err) {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isWakeOnly: the change is saved, only the workflow's wake-up failed (it looks again on its
// own); the answer is the change's.
func isWakeOnly(err error) bool {
	var we *outbound.WakeError
	return errors.As(err, &we)
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (a *API) setState(w http.ResponseWriter, r *http.Request, resume bool) {
	var req reasonRequest
	if !decode(w, r, &req, true) {
		return
	}
	if len(req.Reason) > 500 {
		writeError(w, http.StatusBadRequest, "invalid", "reason: at most 500 characters")
		return
	}
	change := a.subs.Pause
	if resume {
		change = a.subs.Resume
	}
	sub, err := change(r.Context(), mux.Vars(r)["id"], req.Reason)
	if err != nil && !isWakeOnly(err) {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view(sub))
}

func (a *API) pauseSubscription(w http.ResponseWriter, r *http.Request)  { a.setState(w, r, false) }
func (a *API) resumeSubscription(w http.ResponseWriter, r *http.Request) { a.setState(w, r, true) }

type replayRequest struct {
	Since *time.Time          `json:"since"`
	After *store.FeedPosition `json:"after"`
}

func (a *API) replaySubscription(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.After != nil {
		if _, err := strconv.ParseUint(req.After.TxID, 10, 64); err != nil || req.After.Seq < 0 {
			writeError(w, http.StatusBadRequest, "invalid", "after: txid is a decimal string and seq a non-negative number")
			return
		}
	}
	n, err := a.subs.Replay(r.Context(), mux.Vars(r)["id"], store.ReplayFrom{Since: req.Since, After: req.After})
	if err != nil && !isWakeOnly(err) {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"replayed": n})
}

type rotateRequest struct {
	KeepOld bool `json:"keep_old"`
}

func (a *API) rotateSecret(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if !decode(w, r, &req, true) {
		return
	}
	sub, secret, err := a.subs.RotateSecret(r.Context(), mux.Vars(r)["id"], req.KeepOld)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.InfoContext(r.Context(), "subscription secret rotated", "subscription_id", sub.ID, "secrets", len(sub.Secrets))
	writeJSON(w, http.StatusOK, withSecret{Subscription: view(sub), Secret: secret})
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	limit, err := limitParam(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var before int64
	if c := r.URL.Query().Get("cursor"); c != "" {
		if before, err = strconv.ParseInt(c, 10, 64); err != nil || before < 1 {
			writeError(w, http.StatusBadRequest, "invalid", "cursor: not one this API gave")
			return
		}
	}
	if _, err := a.subs.Store.GetSubscription(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	ds, err := a.subs.Store.DeliveryLog(r.Context(), id, before, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pageOf(ds, limit, func(d store.Delivery) string { return strconv.FormatInt(d.Seq, 10) }))
}
