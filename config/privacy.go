package config

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Personal-data defaults (README "Personal data"): a careful team's choices.
const (
	// A deleted record is kept whole for 30 days (Kombo anonymises after 14), so an application
	// reading the feed sees the deletion with its content, then it becomes a tombstone.
	DefaultDeletedRecordRetention = 30 * 24 * time.Hour
	// Old and new values in the change feed are kept for 90 days: long enough for any consumer
	// to catch up and to answer "what did it say last quarter", not for ever.
	DefaultChangeValuesRetention = 90 * 24 * time.Hour
	// The inbox needs a webhook only until it is signaled; 30 days leaves time to replay one.
	DefaultWebhookEventsRetention = 30 * 24 * time.Hour
	DefaultRetentionBatchSize     = 1000
)

// Privacy is the personal-data settings of the worker (PartPrivacy).
type Privacy struct {
	// DeletedRecordRetention: a deleted record's content is reduced to a tombstone this long
	// after its deletion (0: never).
	DeletedRecordRetention time.Duration
	// ChangeValuesRetention: change rows' old and new values are redacted this long after they
	// were recorded (0: never).
	ChangeValuesRetention time.Duration
	// WebhookEventsRetention: signaled inbox rows are deleted this long after they arrived
	// (0: never).
	WebhookEventsRetention time.Duration
	// RetentionBatchSize: rows per transaction of the retention run.
	RetentionBatchSize int
	// RetentionBatchPause: a pause between two batches, leaving the database room.
	RetentionBatchPause time.Duration
	// FieldPolicyFile is the field policy (privacy.Parse's document); none when empty.
	FieldPolicyFile string
	// FieldPolicyHashKey keys the hashes of the policy's hash rules.
	FieldPolicyHashKey Secret
}

// durationDays is a flag value taking Go durations ("720h") and whole days ("30d").
type durationDays struct{ d *time.Duration }

func (v durationDays) String() string {
	if v.d == nil {
		return ""
	}
	if *v.d%(24*time.Hour) == 0 && *v.d > 0 {
		return strconv.Itoa(int(*v.d/(24*time.Hour))) + "d"
	}
	return v.d.String()
}

func (v durationDays) Set(s string) error {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("%q: days must be a whole number, e.g. 30d", s)
		}
		*v.d = time.Duration(days) * 24 * time.Hour
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: a duration like 30d or 720h", s)
	}
	*v.d = d
	return nil
}

func registerPrivacy(fs *flag.FlagSet, c *Config) {
	p := &c.Privacy
	p.DeletedRecordRetention, p.ChangeValuesRetention, p.WebhookEventsRetention =
		DefaultDeletedRecordRetention, DefaultChangeValuesRetention, DefaultWebhookEventsRetention
	fs.Var(durationDays{&p.DeletedRecordRetention}, "deleted-record-retention", "a deleted record becomes a tombstone (ids and dates only) this long after its deletion, e.g. 30d; 0 never (env DELETED_RECORD_RETENTION)")
	fs.Var(durationDays{&p.ChangeValuesRetention}, "change-values-retention", "change rows' old and new values are redacted this long after they were recorded, e.g. 90d; 0 never (env CHANGE_VALUES_RETENTION)")
	fs.Var(durationDays{&p.WebhookEventsRetention}, "webhook-events-retention", "signaled webhooks leave the inbox this long after they arrived, e.g. 30d; 0 never (env WEBHOOK_EVENTS_RETENTION)")
	fs.IntVar(&p.RetentionBatchSize, "retention-batch-size", DefaultRetentionBatchSize, "rows per transaction of the daily retention run (env RETENTION_BATCH_SIZE)")
	fs.DurationVar(&p.RetentionBatchPause, "retention-batch-pause", 0, "pause between two batches of the retention run, to leave the database room (env RETENTION_BATCH_PAUSE)")
	fs.StringVar(&p.FieldPolicyFile, "field-policy-file", "", "JSON file of fields to drop or hash per endpoint before anything is stored (env FIELD_POLICY_FILE)")
	fs.Func("field-policy-hash-key", "key of the policy's hashes, at least 32 bytes; prefer the env var FIELD_POLICY_HASH_KEY (never logged)", func(v string) error {
		p.FieldPolicyHashKey = Secret(v)
		return nil
	})
}

func (p *Privacy) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"DELETED_RECORD_RETENTION", p.DeletedRecordRetention}, {"CHANGE_VALUES_RETENTION", p.ChangeValuesRetention},
		{"WEBHOOK_EVENTS_RETENTION", p.WebhookEventsRetention}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, not %s", d.name, d.v))
		}
	}
	if p.RetentionBatchSize < 1 || p.RetentionBatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("RETENTION_BATCH_SIZE must be between 1 and 100000, not %d", p.RetentionBatchSize))
	}
	if p.RetentionBatchPause < 0 || p.RetentionBatchPause > time.Minute {
		errs = append(errs, fmt.Errorf("RETENTION_BATCH_PAUSE must be between 0 and 1m, not %s", p.RetentionBatchPause))
	}
	if p.FieldPolicyHashKey != "" && p.FieldPolicyFile == "" {
		errs = append(errs, errors.New("FIELD_POLICY_HASH_KEY is set but FIELD_POLICY_FILE is not"))
	}
	return errors.Join(errs...)
}

func (p *Privacy) logAttrs() slog.Attr {
	return slog.Group("privacy",
		slog.Duration("deleted_record_retention", p.DeletedRecordRetention),
		slog.Duration("change_values_retention", p.ChangeValuesRetention),
		slog.Duration("webhook_events_retention", p.WebhookEventsRetention),
		slog.Int("retention_batch_size", p.RetentionBatchSize),
		slog.Duration("retention_batch_pause", p.RetentionBatchPause),
		slog.String("field_policy_file", p.FieldPolicyFile),
		slog.Bool("field_policy_hash_key_set", p.FieldPolicyHashKey != ""))
}
