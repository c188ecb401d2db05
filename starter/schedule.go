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
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/workflows"
)

// The weekly reconciliation's defaults: Sunday 03:00 UTC, started up to 30 minutes late at random.
const (
	defaultCron   = "0 3 * * 0"
	defaultJitter = 30 * time.Minute
)

func scheduleCommand(stdout io.Writer) *ffcli.Command {
	var cron string
	var jitter, batchPause time.Duration
	var batchSize int
	apply := commandWith("apply", "schedule apply [flags]", "create or update the weekly reconciliation schedule", config.PartTemporal,
		func(fs *flag.FlagSet) {
			fs.StringVar(&cron, "cron", defaultCron, "when the reconciliation runs, as a cron expression in UTC")
			fs.DurationVar(&jitter, "jitter", defaultJitter, "random delay added to each start, so not every deployment starts at once")
			fs.IntVar(&batchSize, "batch-size", 100, "integrations asked to reconcile per batch")
			fs.DurationVar(&batchPause, "batch-pause", 10*time.Second, "pause between batches, spreading thousands of integrations out")
		},
		func(ctx context.Context, cfg *config.Config, args []string) error {
			if len(args) > 0 {
				return config.UsageError{Err: fmt.Errorf("schedule apply takes no arguments, got %q", args)}
			}
			if batchSize < 1 || batchPause < 0 || jitter < 0 {
				return config.UsageError{Err: errors.New("--batch-size must be positive, --batch-pause and --jitter not negative")}
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return err
			}
			defer tc.Close()
			spec := client.ScheduleSpec{CronExpressions: []string{cron}, Jitter: jitter}
			action := &client.ScheduleWorkflowAction{
				ID:            "kombo-reconcile",
				Workflow:      workflows.ReconcileType,
				Args:          []any{workflows.ReconcileInput{BatchSize: batchSize, BatchPause: batchPause}},
				TaskQueue:     cfg.TaskQueue,
				StaticSummary: "weekly reconciliation: every integration runs a full pass",
			}
			created, err := applySchedule(ctx, tc, spec, action)
			if err != nil {
				return err
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(stdout, "schedule %s %s: %q (UTC), jitter %s, overlap skip, task queue %s\n",
				workflows.WeeklyReconcileScheduleID, verb, cron, jitter, cfg.TaskQueue)
			return nil
		})
	apply.LongHelp = "Creates the Temporal Schedule " + workflows.WeeklyReconcileScheduleID + ", or updates it to the given\n" +
		"settings when it exists: running it again is safe. Overlapping runs are skipped."

	handleCmd := func(name, help string, f func(context.Context, client.ScheduleHandle) (string, error)) *ffcli.Command {
		return command(name, "schedule "+name, help, config.PartTemporal, func(ctx context.Context, cfg *config.Config, args []string) error {
			if len(args) > 0 {
				return config.UsageError{Err: fmt.Errorf("schedule %s takes no arguments, got %q", name, args)}
			}
			tc, err := dial(ctx, cfg)
			if err != nil {
				return err
			}
			defer tc.Close()
			out, err := f(ctx, tc.ScheduleClient().GetHandle(ctx, workflows.WeeklyReconcileScheduleID))
			if err != nil {
				return fmt.Errorf("schedule %s: %w", workflows.WeeklyReconcileScheduleID, err)
			}
			fmt.Fprintln(stdout, out)
			return nil
		})
	}
	trigger := handleCmd("trigger", "run the reconciliation now", func(ctx context.Context, h client.ScheduleHandle) (string, error) {
		return "reconciliation triggered", h.Trigger(ctx, client.ScheduleTriggerOptions{Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP})
	})
	pause := handleCmd("pause", "stop starting reconciliations", func(ctx context.Context, h client.ScheduleHandle) (string, error) {
		return "schedule paused", h.Pause(ctx, client.SchedulePauseOptions{Note: "paused with starter"})
	})
	unpause := handleCmd("unpause", "start reconciliations again", func(ctx context.Context, h client.ScheduleHandle) (string, error) {
		return "schedule unpaused", h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "unpaused with starter"})
	})
	describe := handleCmd("describe", "show the schedule, its next and recent runs", func(ctx context.Context, h client.ScheduleHandle) (string, error) {
		d, err := h.Describe(ctx)
		if err != nil {
			return "", err
		}
		out := fmt.Sprintf("schedule %s", workflows.WeeklyReconcileScheduleID)
		if d.Schedule.Spec != nil {
			out += fmt.Sprintf("\n  jitter:  %s", d.Schedule.Spec.Jitter)
		}
		if d.Schedule.State != nil && d.Schedule.State.Paused {
			out += "\n  paused:  " + d.Schedule.State.Note
		}
		for _, t := range d.Info.NextActionTimes {
			out += "\n  next:    " + t.UTC().Format(time.RFC3339)
		}
		for _, a := range d.Info.RecentActions {
			out += fmt.Sprintf("\n  ran:     %s (%s)", a.ActualTime.UTC().Format(time.RFC3339), a.StartWorkflowResult.WorkflowID)
		}
		out += fmt.Sprintf("\n  runs:    %d, skipped for overlap: %d", d.Info.NumActions, d.Info.NumActionsSkippedOverlap)
		return out, nil
	})
	return group("schedule", "the weekly reconciliation schedule: apply, describe, trigger, pause, unpause",
		apply, describe, trigger, pause, unpause)
}

// applySchedule creates the schedule, or updates it when it exists; created says which.
func applySchedule(ctx context.Context, tc client.Client, spec client.ScheduleSpec, action *client.ScheduleWorkflowAction) (bool, error) {
	sc := tc.ScheduleClient()
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:      workflows.WeeklyReconcileScheduleID,
		Spec:    spec,
		Action:  action,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    "created with starter schedule apply",
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create schedule %s: %w", workflows.WeeklyReconcileScheduleID, err)
	}
	err = sc.GetHandle(ctx, workflows.WeeklyReconcileScheduleID).Update(ctx, client.ScheduleUpdateOptions{
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
		return false, fmt.Errorf("update schedule %s: %w", workflows.WeeklyReconcileScheduleID, err)
	}
	return false, nil
}
