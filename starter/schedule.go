package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/store"
	"github.com/kombosync/kombosync/workflows"
)

// The weekly reconciliation's defaults: Sunday 03:00 UTC, started up to 30 minutes late at random.
const (
	defaultCron   = "0 3 * * 0"
	defaultJitter = 30 * time.Minute
	// The daily retention run: 04:00 UTC, with the same jitter.
	defaultRetentionCron = "0 4 * * *"
)

func (c *cli) scheduleCommand() *ffcli.Command {
	var cron, retentionCron string
	var jitter, batchPause time.Duration
	var batchSize int
	apply := c.commandWith("apply", "schedule apply [flags]", "create or update the weekly reconciliation and the daily retention schedules", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.StringVar(&cron, "cron", defaultCron, "when the reconciliation runs, as a cron expression in UTC")
			fs.StringVar(&retentionCron, "retention-cron", defaultRetentionCron, "when the retention run (README \"Personal data\") runs, as a cron expression in UTC")
			fs.DurationVar(&jitter, "jitter", defaultJitter, "random delay added to each start, so not every deployment starts at once")
			fs.IntVar(&batchSize, "batch-size", 100, "integrations asked to reconcile per batch")
			fs.DurationVar(&batchPause, "batch-pause", 10*time.Second, "pause between batches, spreading thousands of integrations out")
		},
		func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("schedule apply", args, 0, "no arguments"); err != nil {
				return nil, err
			}
			if batchSize < 1 || batchPause < 0 || jitter < 0 {
				return nil, config.UsageError{Err: errors.New("--batch-size must be positive, --batch-pause and --jitter not negative")}
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			action := &client.ScheduleWorkflowAction{
				ID:            "kombo-reconcile",
				Workflow:      workflows.ReconcileType,
				Args:          []any{workflows.ReconcileInput{BatchSize: batchSize, BatchPause: batchPause}},
				TaskQueue:     cfg.TaskQueue,
				StaticSummary: "weekly reconciliation: every integration runs a full pass",
			}
			var res applied
			for _, s := range []struct {
				id, cron string
				action   *client.ScheduleWorkflowAction
			}{
				{workflows.WeeklyReconcileScheduleID, cron, action},
				{workflows.DailyRetentionScheduleID, retentionCron, &client.ScheduleWorkflowAction{
					ID:            "kombo-retention",
					Workflow:      workflows.RetentionType,
					Args:          []any{workflows.RetentionInput{Reason: "daily retention"}},
					TaskQueue:     cfg.TaskQueue,
					StaticSummary: "daily retention: tombstones, redacted change values, the inbox, the field policy",
				}},
			} {
				created, err := applySchedule(ctx, tc, s.id, client.ScheduleSpec{CronExpressions: []string{s.cron}, Jitter: jitter}, s.action)
				if err != nil {
					return nil, err
				}
				verb := "updated"
				if created {
					verb = "created"
				}
				res.Schedules = append(res.Schedules, done{Subject: "schedule " + s.id, Outcome: fmt.Sprintf(
					"%s, %q (UTC), jitter %s, overlap skip, task queue %s", verb, s.cron, jitter, cfg.TaskQueue)})
			}
			return res, nil
		})
	apply.LongHelp = "Creates the Temporal Schedules " + workflows.WeeklyReconcileScheduleID + " and " + workflows.DailyRetentionScheduleID + ",\n" +
		"or updates them to the given settings when they exist: running it again is safe. Overlapping\nruns are skipped."

	handleCmd := func(name, help string, f func(context.Context, client.ScheduleHandle) (result, error)) *ffcli.Command {
		return c.command(name, "schedule "+name, help, config.PartTemporal, func(ctx context.Context, cfg *config.Config, args []string) (result, error) {
			if err := wantArgs("schedule "+name, args, 0, "no arguments"); err != nil {
				return nil, err
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return nil, err
			}
			defer tc.Close()
			res, err := f(ctx, tc.ScheduleClient().GetHandle(ctx, workflows.WeeklyReconcileScheduleID))
			var notFound *serviceerror.NotFound
			switch {
			case errors.As(err, &notFound):
				return nil, fmt.Errorf("schedule %s does not exist; create it with starter schedule apply: %w",
					workflows.WeeklyReconcileScheduleID, store.ErrNotFound)
			case err != nil:
				return nil, fmt.Errorf("schedule %s: %w", workflows.WeeklyReconcileScheduleID, err)
			}
			return res, nil
		})
	}
	did := func(outcome string) done {
		return done{Subject: "schedule " + workflows.WeeklyReconcileScheduleID, Outcome: outcome}
	}
	trigger := handleCmd("trigger", "run the reconciliation now", func(ctx context.Context, h client.ScheduleHandle) (result, error) {
		return did("reconciliation triggered"), h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP})
	})
	pause := handleCmd("pause", "stop starting reconciliations", func(ctx context.Context, h client.ScheduleHandle) (result, error) {
		return did("paused"), h.Pause(ctx, client.SchedulePauseOptions{Note: "paused with starter"})
	})
	unpause := handleCmd("unpause", "start reconciliations again", func(ctx context.Context, h client.ScheduleHandle) (result, error) {
		return did("unpaused"), h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "unpaused with starter"})
	})
	describe := handleCmd("describe", "show the schedule, its next and recent runs", func(ctx context.Context, h client.ScheduleHandle) (result, error) {
		d, err := h.Describe(ctx)
		if err != nil {
			return nil, err
		}
		out := scheduleReport{ID: workflows.WeeklyReconcileScheduleID, Runs: d.Info.NumActions, SkippedOverlap: d.Info.NumActionsSkippedOverlap,
			Next: []time.Time{}, Recent: []scheduledRun{}}
		if d.Schedule.Spec != nil {
			out.Jitter = d.Schedule.Spec.Jitter.String()
		}
		if d.Schedule.State != nil && d.Schedule.State.Paused {
			out.Paused, out.Note = true, d.Schedule.State.Note
		}
		for _, t := range d.Info.NextActionTimes {
			out.Next = append(out.Next, t.UTC())
		}
		for _, a := range d.Info.RecentActions {
			out.Recent = append(out.Recent, scheduledRun{At: a.ActualTime.UTC(), WorkflowID: a.StartWorkflowResult.WorkflowID})
		}
		return out, nil
	})
	return group("schedule", "the weekly reconciliation schedule: apply, describe, trigger, pause, unpause",
		apply, describe, trigger, pause, unpause)
}

// applied is schedule apply's result: one line per schedule.
type applied struct {
	Schedules []done `json:"schedules"`
}

func (a applied) text(w io.Writer) {
	for _, d := range a.Schedules {
		d.text(w)
	}
}

// applySchedule creates the schedule, or updates it when it exists; created says which.
func applySchedule(ctx context.Context, tc client.Client, id string, spec client.ScheduleSpec, action *client.ScheduleWorkflowAction) (bool, error) {
	sc := tc.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Action:  action,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "created with starter schedule apply",
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create schedule %s: %w", id, err)
	}
	err = sc.GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec = &spec
			s.Action = action
			if s.Policy == nil {
				s.Policy = &client.SchedulePolicies{}
			}
			s.Policy.Overlap = enums.SCHEDULE_OVERLAP_POLICY_SKIP
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
	if err != nil {
		return false, fmt.Errorf("update schedule %s: %w", id, err)
	}
	return false, nil
}

// scheduleReport is schedule describe's result.
type scheduleReport struct {
	ID             string         `json:"schedule_id"`
	Jitter         string         `json:"jitter,omitempty"`
	Paused         bool           `json:"paused"`
	Note           string         `json:"note,omitempty"`
	Next           []time.Time    `json:"next"`
	Recent         []scheduledRun `json:"recent"`
	Runs           int            `json:"runs"`
	SkippedOverlap int            `json:"skipped_overlap"`
}

type scheduledRun struct {
	At         time.Time `json:"at"`
	WorkflowID string    `json:"workflow_id"`
}

func (r scheduleReport) text(w io.Writer) {
	fmt.Fprintf(w, "schedule %s\n", r.ID)
	if r.Jitter != "" {
		fmt.Fprintf(w, "  jitter:  %s\n", r.Jitter)
	}
	if r.Paused {
		fmt.Fprintf(w, "  paused:  %s\n", r.Note)
	}
	for _, t := range r.Next[:min(3, len(r.Next))] {
		fmt.Fprintf(w, "  next:    %s\n", t.Format(time.RFC3339))
	}
	for _, a := range r.Recent {
		fmt.Fprintf(w, "  ran:     %s (%s)\n", a.At.Format(time.RFC3339), a.WorkflowID)
	}
	fmt.Fprintf(w, "  runs:    %d, skipped for overlap: %d\n", r.Runs, r.SkippedOverlap)
}
