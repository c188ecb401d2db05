package workflows_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/kombosync/kombosync/activities"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// recorded is one history of workflows/testdata, with what its events reveal.
type recorded struct {
	file   string
	wfType string
	events []*historypb.HistoryEvent
	byID   map[int64]*historypb.HistoryEvent
}

func loadRecorded(t *testing.T, file string) recorded {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	r := recorded{file: filepath.Base(file), events: h.Events, byID: map[int64]*historypb.HistoryEvent{}}
	for _, e := range h.Events {
		r.byID[e.EventId] = e
	}
	r.wfType = h.Events[0].GetWorkflowExecutionStartedEventAttributes().GetWorkflowType().GetName()
	return r
}

func decode(t *testing.T, p *commonpb.Payload, v any) {
	t.Helper()
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(p, v))
}

func summaryOf(t *testing.T, e *historypb.HistoryEvent) string {
	t.Helper()
	var s string
	if p := e.GetUserMetadata().GetSummary(); p != nil {
		decode(t, p, &s)
	}
	return s
}

// scheduled is the ActivityTaskScheduled event an activity's later event refers to.
func (r recorded) scheduled(id int64) *historypb.HistoryEvent { return r.byID[id] }

// completedActivities are the activities of that type that completed, with their results.
func (r recorded) completedActivities(t *testing.T, activityType string, summary func(string) bool) []*commonpb.Payloads {
	var out []*commonpb.Payloads
	for _, e := range r.events {
		a := e.GetActivityTaskCompletedEventAttributes()
		if a == nil {
			continue
		}
		s := r.scheduled(a.ScheduledEventId)
		if s.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activityType &&
			(summary == nil || summary(summaryOf(t, s))) {
			out = append(out, a.Result)
		}
	}
	return out
}

// activityFailedWith: an activity of the history failed with that application error type.
func (r recorded) activityFailedWith(errType string) bool {
	for _, e := range r.events {
		if a := e.GetActivityTaskFailedEventAttributes(); a != nil && a.Failure.GetApplicationFailureInfo().GetType() == errType {
			return true
		}
	}
	return false
}

// timers reports, per timer summary, how the timers ended: "fired" or "canceled".
func (r recorded) timerEnds(t *testing.T, summary string) (fired, canceled int) {
	for _, e := range r.events {
		var started int64
		switch e.EventType {
		case enums.EVENT_TYPE_TIMER_FIRED:
			started = e.GetTimerFiredEventAttributes().StartedEventId
		case enums.EVENT_TYPE_TIMER_CANCELED:
			started = e.GetTimerCanceledEventAttributes().StartedEventId
		default:
			continue
		}
		if summaryOf(t, r.byID[started]) != summary {
			continue
		}
		if e.EventType == enums.EVENT_TYPE_TIMER_FIRED {
			fired++
		} else {
			canceled++
		}
	}
	return fired, canceled
}

// signals lists the signals received, with the event type for kombo-event.
func (r recorded) signals(t *testing.T) []string {
	var out []string
	for _, e := range r.events {
		a := e.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil {
			continue
		}
		name := a.SignalName
		if name == workflows.SignalKomboEvent {
			var ev workflows.KomboEvent
			decode(t, a.Input.Payloads[0], &ev)
			name += ":" + ev.Type
		}
		out = append(out, name)
	}
	return out
}

func (r recorded) has(eventType enums.EventType) bool {
	for _, e := range r.events {
		if e.EventType == eventType {
			return true
		}
	}
	return false
}

// burst: a delta round that followed several data-changed events and a fired debounce timer.
func (r recorded) burst(t *testing.T) bool {
	events := 0
	for _, e := range r.events {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == workflows.SignalKomboEvent {
			var ev workflows.KomboEvent
			decode(t, a.Input.Payloads[0], &ev)
			if ev.Type == kombo.EventDataChanged {
				events++
			}
		}
		if a := e.GetTimerFiredEventAttributes(); a != nil && events >= 2 && summaryOf(t, r.byID[a.StartedEventId]) == "debounce" {
			return true
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.ActivityType.GetName() == "FetchEndpoint" {
			events = 0
		}
	}
	return false
}

// version says whether the run recorded that GetVersion change id (at a version above the default).
func (r recorded) version(changeID string) bool {
	for _, e := range r.events {
		if a := e.GetMarkerRecordedEventAttributes(); a != nil && a.MarkerName == "Version" {
			for _, p := range a.Details {
				for _, pl := range p.Payloads {
					if strings.Contains(string(pl.Data), changeID) {
						return true
					}
				}
			}
		}
	}
	return false
}

// leadingEdge: a run of the leading-edge version in which a data-changed was fetched with no
// debounce timer started in between.
func (r recorded) leadingEdge(t *testing.T) bool {
	if !r.version("leading-edge") {
		return false
	}
	waiting := false
	for _, e := range r.events {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.SignalName == workflows.SignalKomboEvent {
			var ev workflows.KomboEvent
			decode(t, a.Input.Payloads[0], &ev)
			waiting = waiting || ev.Type == kombo.EventDataChanged
		}
		if a := e.GetTimerStartedEventAttributes(); a != nil && summaryOf(t, e) == "debounce" {
			waiting = false
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.ActivityType.GetName() == "FetchEndpoint" {
			if waiting {
				return true
			}
		}
	}
	return false
}

// localActivity: the history holds a local activity of that type (its marker).
func (r recorded) localActivity(activityType string) bool {
	for _, e := range r.events {
		if a := e.GetMarkerRecordedEventAttributes(); a != nil && a.MarkerName == "LocalActivity" {
			for _, p := range a.Details {
				for _, pl := range p.Payloads {
					if strings.Contains(string(pl.Data), `"`+activityType+`"`) {
						return true
					}
				}
			}
		}
	}
	return false
}

// retried: an activity of that type started more than once (a retry after its worker died).
func (r recorded) retried(activityType string) bool {
	for _, e := range r.events {
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil && a.Attempt > 1 &&
			r.scheduled(a.ScheduledEventId).GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activityType {
			return true
		}
	}
	return false
}

// deliveryOutcomes counts the outcomes of a SubscriptionDelivery's DeliverPending calls.
func (r recorded) deliveryOutcomes(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, p := range r.completedActivities(t, "DeliverPending", nil) {
		var res activities.DeliverResult
		decode(t, p.Payloads[0], &res)
		out[res.Outcome]++
	}
	return out
}

// upstreamFetch: a sync-now waiting for a Kombo sync (sync --upstream), that sync's
// sync-finished, then a fetch.
func (r recorded) upstreamFetch(t *testing.T) bool {
	waitingFor, finished := "", false
	for _, e := range r.events {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			switch a.SignalName {
			case workflows.SignalSyncNow:
				var req workflows.SyncNowRequest
				decode(t, a.Input.Payloads[0], &req)
				waitingFor = req.AfterKomboSync
			case workflows.SignalKomboEvent:
				var ev workflows.KomboEvent
				decode(t, a.Input.Payloads[0], &ev)
				finished = finished || (waitingFor != "" && ev.Type == kombo.EventSyncFinished && ev.SyncID == waitingFor)
			}
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.ActivityType.GetName() == "FetchEndpoint" && finished {
			return true
		}
	}
	return false
}

func (r recorded) sweeps(t *testing.T) []store.SweepResult {
	var out []store.SweepResult
	for _, p := range r.completedActivities(t, "SweepEndpoint", nil) {
		var res store.SweepResult
		decode(t, p.Payloads[0], &res)
		out = append(out, res)
	}
	return out
}

// TestRecordedHistoriesCoverEveryPath: each path of the workflows has a history recorded from a
// real run in workflows/testdata, so the replay test guards all of them. Record missing ones with
// KOMBOSYNC_RECORD_HISTORIES=1 go test ./e2e (README, "Replay histories").
func TestRecordedHistoriesCoverEveryPath(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	var hs []recorded
	for _, f := range files {
		hs = append(hs, loadRecorded(t, f))
	}
	isSync := func(r recorded) bool { return r.wfType == workflows.IntegrationSyncType }
	delta := func(s string) bool { return strings.HasSuffix(s, "(delta)") || strings.HasSuffix(s, "(backfill)") }
	paths := []struct {
		name    string
		covered func(r recorded) bool
	}{
		{"delta fetch", func(r recorded) bool {
			return isSync(r) && len(r.completedActivities(t, "FetchEndpoint", delta)) > 0
		}},
		{"leading edge: a data-changed fetched at once, no quiet window", func(r recorded) bool {
			return isSync(r) && r.leadingEdge(t)
		}},
		{"debounced burst: several data-changed, one round after the quiet window", func(r recorded) bool {
			return isSync(r) && r.burst(t)
		}},
		{"first-sync wait ended by its durable timer", func(r recorded) bool {
			fired, _ := r.timerEnds(t, "waiting for first sync")
			return isSync(r) && fired > 0 && !strings.Contains(strings.Join(r.signals(t), ","), kombo.EventSyncFinished)
		}},
		{"first-sync wait ended early by sync-finished", func(r recorded) bool {
			_, canceled := r.timerEnds(t, "waiting for first sync")
			return isSync(r) && canceled > 0 && strings.Contains(strings.Join(r.signals(t), ","), kombo.EventSyncFinished)
		}},
		{"auth failure found by a fetch", func(r recorded) bool {
			return isSync(r) && r.activityFailedWith(activities.ErrAuthFailed)
		}},
		{"sync --upstream: fetched when the asked-for Kombo sync finished", func(r recorded) bool {
			return isSync(r) && r.upstreamFetch(t)
		}},
		{"a finished round notified on kombo_changes (round-notify version)", func(r recorded) bool {
			return isSync(r) && r.version("round-notify") && r.localActivity("NotifyRound")
		}},
		{"paused and resumed by an operator", func(r recorded) bool {
			s := strings.Join(r.signals(t), ",")
			return isSync(r) && strings.Contains(s, workflows.SignalPause) && strings.Contains(s, workflows.SignalResume)
		}},
		{"paused by Kombo, resumed by asking Kombo (the state probe)", func(r recorded) bool {
			for _, res := range r.completedActivities(t, "CheckIntegration", nil) {
				var c activities.CheckIntegrationResult
				decode(t, res.Payloads[0], &c)
				if c.State == kombo.IntegrationActive {
					return isSync(r)
				}
			}
			return false
		}},
		{"a page that fails every attempt (DataError) holds only its endpoint", func(r recorded) bool {
			return isSync(r) && r.activityFailedWith(activities.ErrDataError)
		}},
		{"paused by integration-state-changed", func(r recorded) bool {
			return isSync(r) && strings.Contains(strings.Join(r.signals(t), ","), kombo.EventIntegrationStateChanged)
		}},
		{"continue-as-new", func(r recorded) bool {
			return isSync(r) && r.has(enums.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)
		}},
		{"a run continued from continue-as-new", func(r recorded) bool {
			return isSync(r) && r.events[0].GetWorkflowExecutionStartedEventAttributes().ContinuedExecutionRunId != ""
		}},
		{"reconcile: the full pass as a child workflow", func(r recorded) bool {
			return isSync(r) && r.has(enums.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED)
		}},
		{"full pass sweeping rows Kombo no longer returns", func(r recorded) bool {
			for _, s := range r.sweeps(t) {
				if s.Swept > 0 {
					return r.wfType == workflows.FullSyncType
				}
			}
			return false
		}},
		{"full pass whose sweep the guard refused", func(r recorded) bool {
			for _, s := range r.sweeps(t) {
				if s.Refused {
					return r.wfType == workflows.FullSyncType
				}
			}
			return false
		}},
		{"deleted integration purged after retention, workflow completed", func(r recorded) bool {
			return isSync(r) && len(r.completedActivities(t, "PurgeIntegration", nil)) > 0 &&
				r.has(enums.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
		}},
		{"retention run: every step in batches, one resumed after its worker died", func(r recorded) bool {
			return r.wfType == workflows.RetentionType && len(r.completedActivities(t, "RetainStep", nil)) >= len(store.RetentionSteps) &&
				(r.has(enums.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT) || r.retried("RetainStep"))
		}},
		{"a finished round reported by PublishRound (round-report version)", func(r recorded) bool {
			return isSync(r) && r.version("round-report") && len(r.completedActivities(t, "PublishRound", nil)) > 0
		}},
		{"subscription delivery: failures waited out on timers, delivered once back, one batch retried after its worker died, ended by the deletion", func(r recorded) bool {
			outcomes := r.deliveryOutcomes(t)
			return r.wfType == workflows.SubscriptionDeliveryType && outcomes[activities.DeliverFailed] > 0 &&
				outcomes[activities.DeliverDrained] > 0 && outcomes[activities.DeliverDeleted] == 1 && r.retried("DeliverPending") &&
				r.has(enums.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
		}},
		{"subscription delivery: disabled (410), waiting, resumed by an operator", func(r recorded) bool {
			outcomes := r.deliveryOutcomes(t)
			return r.wfType == workflows.SubscriptionDeliveryType && outcomes[activities.DeliverDisabled] > 0 &&
				outcomes[activities.DeliverDrained] > 0
		}},
		{"retention run with the action-payloads step (retention-action-payloads version)", func(r recorded) bool {
			return r.wfType == workflows.RetentionType && r.version("retention-action-payloads") &&
				len(r.completedActivities(t, "RetainStep", nil)) > len(store.RetentionSteps)
		}},
		{"action: sent once, succeeded", func(r recorded) bool {
			return r.wfType == workflows.ActionType && len(r.completedActivities(t, "ExecuteAction", nil)) == 1 &&
				len(r.completedActivities(t, "LookUpAction", nil)) == 0 && r.has(enums.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
		}},
		{"action: answer lost, found by a look after a durable timer", func(r recorded) bool {
			return r.wfType == workflows.ActionType && len(r.completedActivities(t, "ExecuteAction", nil)) == 1 &&
				len(r.completedActivities(t, "LookUpAction", nil)) > 0 && r.has(enums.EVENT_TYPE_TIMER_FIRED)
		}},
		{"action: nothing found after the lookup window, sent again", func(r recorded) bool {
			return r.wfType == workflows.ActionType && len(r.completedActivities(t, "ExecuteAction", nil)) >= 2 &&
				len(r.completedActivities(t, "LookUpAction", nil)) > 0
		}},
		{"weekly Reconcile reaching integrations in batches", func(r recorded) bool {
			return r.wfType == workflows.ReconcileType && len(r.completedActivities(t, "ReconcileBatch", nil)) > 0
		}},
	}
	for _, p := range paths {
		var by []string
		for _, r := range hs {
			if p.covered(r) {
				by = append(by, r.file)
			}
		}
		if len(by) == 0 {
			t.Errorf("no recorded history covers %q", p.name)
			continue
		}
		t.Logf("%-70s %s", p.name, strings.Join(by, ", "))
	}
}
