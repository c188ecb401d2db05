package config_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/config"
	"github.com/kombosync/kombosync/kombo"
)

const all = config.PartDatabase | config.PartTemporal | config.PartKomboAPI | config.PartWebhook |
	config.PartSync | config.PartMetrics | config.PartLog | config.PartPrivacy

func parse(t *testing.T, parts config.Part, env map[string]string, args ...string) (*config.Config, error) {
	t.Helper()
	// No developer's own Temporal profile file (the CLI's default path) in these tests.
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	cfg := config.Register(fs, parts)
	return cfg, cfg.Parse(fs, args)
}

var minimal = map[string]string{
	"DATABASE_URL":         "postgres://u:pw@localhost:5432/db",
	"KOMBO_API_KEY":        "key-123",
	"KOMBO_WEBHOOK_SECRET": "whsec-1",
}

func TestDefaultsMatchTheContract(t *testing.T) {
	cfg, err := parse(t, all, minimal)
	require.NoError(t, err)
	require.Equal(t, "localhost:7233", cfg.TemporalAddress)
	require.Equal(t, "default", cfg.TemporalNamespace)
	require.Equal(t, "kombo-sync", cfg.TaskQueue)
	require.Equal(t, "https://api.kombo.dev/v1", cfg.KomboBaseURL)
	require.Equal(t, []string{"data-changed"}, cfg.Triggers)
	require.Equal(t, kombo.DefaultEndpoints(), cfg.Endpoints)
	require.Equal(t, 5*time.Second, cfg.DebounceQuiet)
	require.Equal(t, 60*time.Second, cfg.DebounceMax)
	require.Equal(t, ":8080", cfg.WebhookListenAddr)
	require.Equal(t, []config.Secret{"whsec-1"}, cfg.WebhookSecrets)
}

func TestEnvironmentIsRead(t *testing.T) {
	env := map[string]string{
		"TEMPORAL_ADDRESS":     "temporal:7233",
		"TEMPORAL_NAMESPACE":   "prod",
		"KOMBO_BASE_URL":       "https://api.us.kombo.dev/v1",
		"KOMBO_WEBHOOK_SECRET": " old , new ,",
		"KOMBO_TRIGGERS":       "data-changed,sync-finished",
		"KOMBO_ENDPOINTS":      "hris/employees, ats",
		"DEBOUNCE_QUIET":       "2s",
		"DEBOUNCE_MAX":         "30s",
		"WEBHOOK_LISTEN_ADDR":  "127.0.0.1:9000",
	}
	for k, v := range minimal {
		if _, ok := env[k]; !ok {
			env[k] = v
		}
	}
	cfg, err := parse(t, all, env)
	require.NoError(t, err)
	require.Equal(t, "temporal:7233", cfg.TemporalAddress)
	require.Equal(t, "prod", cfg.TemporalNamespace)
	require.Equal(t, "https://api.us.kombo.dev/v1", cfg.KomboBaseURL)
	require.Equal(t, []config.Secret{"old", "new"}, cfg.WebhookSecrets)
	require.Equal(t, []string{"data-changed", "sync-finished"}, cfg.Triggers)
	require.True(t, cfg.HasTrigger("sync-finished"))
	require.False(t, cfg.HasTrigger("remote-event-received"))
	require.Equal(t, 2*time.Second, cfg.DebounceQuiet)
	require.Equal(t, 30*time.Second, cfg.DebounceMax)
	require.Equal(t, "127.0.0.1:9000", cfg.WebhookListenAddr)
	require.Equal(t, kombo.Endpoint{Category: kombo.CategoryHRIS, Name: "employees"}, cfg.Endpoints[0])
	for _, e := range cfg.Endpoints[1:] {
		require.Equal(t, kombo.CategoryATS, e.Category)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	env := map[string]string{"DEBOUNCE_QUIET": "2s", "TEMPORAL_ADDRESS": "env:7233"}
	for k, v := range minimal {
		env[k] = v
	}
	cfg, err := parse(t, all, env, "-debounce-quiet", "7s", "-temporal-address", "flag:7233")
	require.NoError(t, err)
	require.Equal(t, 7*time.Second, cfg.DebounceQuiet)
	require.Equal(t, "flag:7233", cfg.TemporalAddress)
}

func TestValidationNamesEveryProblem(t *testing.T) {
	_, err := parse(t, all, map[string]string{"DEBOUNCE_QUIET": "10s", "DEBOUNCE_MAX": "5s"})
	require.ErrorAs(t, err, new(config.UsageError))
	msg := err.Error()
	for _, want := range []string{
		"DATABASE_URL is required",
		"KOMBO_API_KEY is required",
		"KOMBO_WEBHOOK_SECRET is required",
		"DEBOUNCE_MAX (5s) must not be shorter than DEBOUNCE_QUIET (10s)",
	} {
		require.Contains(t, msg, want)
	}
}

func TestOnlyRegisteredPartsAreRequired(t *testing.T) {
	_, err := parse(t, config.PartDatabase, map[string]string{"DATABASE_URL": "postgres://localhost/db"})
	require.NoError(t, err)
}

func TestMalformedValuesAreRejected(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"not a postgres url":  {map[string]string{"DATABASE_URL": "mysql://u:hunter2@db/x"}, "DATABASE_URL must be a postgres:// URL"},
		"temporal address":    {map[string]string{"TEMPORAL_ADDRESS": "no-port"}, "TEMPORAL_ADDRESS must be host:port"},
		"base url":            {map[string]string{"KOMBO_BASE_URL": "ftp://x"}, "KOMBO_BASE_URL must be an http(s) URL"},
		"unknown trigger":     {map[string]string{"KOMBO_TRIGGERS": "data-changed,bogus"}, `unknown trigger "bogus"`},
		"unknown endpoint":    {map[string]string{"KOMBO_ENDPOINTS": "hris/payslips"}, `unknown endpoint "hris/payslips"`},
		"bad duration":        {map[string]string{"DEBOUNCE_QUIET": "soon"}, "DEBOUNCE_QUIET"},
		"empty secret list":   {map[string]string{"KOMBO_WEBHOOK_SECRET": " , "}, "KOMBO_WEBHOOK_SECRET is required"},
		"negative overlap":    {map[string]string{"FETCH_OVERLAP": "-1m"}, "FETCH_OVERLAP must not be negative"},
		"heartbeat too short": {map[string]string{"FETCH_HEARTBEAT_TIMEOUT": "100ms"}, "FETCH_HEARTBEAT_TIMEOUT must be between 1s and 10m"},
		"parallelism":         {map[string]string{"FETCH_PARALLELISM": "0"}, "FETCH_PARALLELISM must be between 1 and 32"},
		"max rps":             {map[string]string{"KOMBO_MAX_RPS": "-1"}, "KOMBO_MAX_RPS must be between 0 (no cap) and 10000"},
		"max fetches":         {map[string]string{"MAX_CONCURRENT_FETCHES": "0"}, "MAX_CONCURRENT_FETCHES must be between 1 and 1000"},
		"log level":           {map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		"metrics listen addr": {map[string]string{"METRICS_LISTEN_ADDR": "9090"}, "METRICS_LISTEN_ADDR must be [host]:port"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range minimal {
				env[k] = v
			}
			for k, v := range c.env {
				env[k] = v
			}
			_, err := parse(t, all, env)
			require.ErrorAs(t, err, new(config.UsageError))
			require.ErrorContains(t, err, c.want)
			require.NotContains(t, err.Error(), "hunter2", "a rejected database URL must not be echoed")
		})
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := parse(t, all, minimal)
	require.NoError(t, err)
	var logged bytes.Buffer
	cfg.Logger(&logged).Info("config", "cfg", cfg, "key", cfg.KomboAPIKey, "secrets", cfg.WebhookSecrets)
	printed := fmt.Sprintf("%v %+v %s", cfg, cfg, cfg.KomboAPIKey)
	for _, out := range []string{logged.String(), printed} {
		require.NotContains(t, out, "key-123")
		require.NotContains(t, out, "whsec-1")
		require.NotContains(t, out, ":pw@", "the database password")
	}
	require.Equal(t, "key-123", cfg.KomboAPIKey.Reveal())
}

// .env.example is the documented list of settings: it must name every variable the programs
// read, and nothing they do not.
func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../.env.example")
	require.NoError(t, err)
	var documented []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "# "))
		if name, _, ok := strings.Cut(line, "="); ok && name == strings.ToUpper(name) && !strings.Contains(name, " ") {
			documented = append(documented, name)
		}
	}
	want := config.EnvVars(all | config.PartOutbound | config.PartAPI | config.PartActions)
	slices.Sort(want)
	slices.Sort(documented)
	require.Equal(t, want, slices.Compact(documented))
}

func TestMetricsServerCanBeSwitchedOff(t *testing.T) {
	env := map[string]string{"METRICS_LISTEN_ADDR": "off"}
	for k, v := range minimal {
		env[k] = v
	}
	cfg, err := parse(t, all, env)
	require.NoError(t, err)
	require.Empty(t, cfg.MetricsListenAddr, "off disables it (an empty variable counts as unset)")
}

// The Temporal connection: a profile file as the temporal CLI writes it, with the environment and
// flags over it, as Temporal's own tools merge them.
func TestTemporalProfileFileUnderEnvironmentAndFlags(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/temporal.toml"
	require.NoError(t, os.WriteFile(file, []byte(`
[profile.default]
address = "file-default:7233"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "file-api-key"
`), 0o600))
	env := map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "cloud"}
	for k, v := range minimal {
		env[k] = v
	}
	cfg, err := parse(t, all, env)
	require.NoError(t, err)
	require.Equal(t, "ns.acct.tmprl.cloud:7233", cfg.TemporalAddress, "the file's address, not kombosync's default")
	require.Equal(t, "ns.acct", cfg.TemporalNamespace)
	require.Equal(t, "api key over tls", config.TemporalMode(cfg.TemporalProfile()))
	require.NotContains(t, cfg.String(), "file-api-key")

	env["TEMPORAL_NAMESPACE"], env["TEMPORAL_API_KEY"] = "other.acct", "env-api-key"
	cfg, err = parse(t, all, env, "-temporal-address", "flag:7233")
	require.NoError(t, err)
	require.Equal(t, "flag:7233", cfg.TemporalAddress)
	require.Equal(t, "other.acct", cfg.TemporalNamespace)
	require.Equal(t, "env-api-key", cfg.TemporalProfile().APIKey)

	env["TEMPORAL_TLS"] = "false"
	cfg, err = parse(t, all, env)
	require.NoError(t, err)
	require.Equal(t, "api key without tls", config.TemporalMode(cfg.TemporalProfile()))

	_, err = parse(t, all, map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "nope"})
	require.ErrorContains(t, err, "TEMPORAL_CONFIG_FILE")
}

func TestTemporalTLSSettingsAreCheckedAtStart(t *testing.T) {
	env := map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem"}
	for k, v := range minimal {
		env[k] = v
	}
	_, err := parse(t, all, env)
	require.ErrorContains(t, err, "Temporal TLS settings")
	require.ErrorContains(t, err, "key path", "a certificate without its key is named")

	// (An empty variable counts as unset.)
	env["TEMPORAL_TLS_CLIENT_CERT_PATH"], env["TEMPORAL_TLS"], env["TEMPORAL_TLS_SERVER_NAME"] = "", "maybe", "temporal.internal"
	_, err = parse(t, all, env)
	require.ErrorContains(t, err, "TEMPORAL_TLS: must be true or false")

	env["TEMPORAL_TLS"] = ""
	cfg, err := parse(t, all, env)
	require.NoError(t, err)
	require.Equal(t, "tls", config.TemporalMode(cfg.TemporalProfile()))
	require.Equal(t, "temporal.internal", cfg.TemporalProfile().TLS.ServerName)

	env["TEMPORAL_TLS_SERVER_NAME"] = ""
	cfg, err = parse(t, all, env)
	require.NoError(t, err)
	require.Equal(t, "plaintext", config.TemporalMode(cfg.TemporalProfile()))
}

func TestPrivacySettings(t *testing.T) {
	cfg, err := parse(t, all, minimal)
	require.NoError(t, err)
	require.Equal(t, config.Privacy{DeletedRecordRetention: 30 * 24 * time.Hour, ChangeValuesRetention: 90 * 24 * time.Hour,
		WebhookEventsRetention: 30 * 24 * time.Hour, RetentionBatchSize: 1000}, cfg.Privacy, "the documented defaults")

	env := map[string]string{"DELETED_RECORD_RETENTION": "7d", "CHANGE_VALUES_RETENTION": "0", "WEBHOOK_EVENTS_RETENTION": "36h",
		"FIELD_POLICY_FILE": "/p.json", "FIELD_POLICY_HASH_KEY": "secret-hash-key"}
	for k, v := range minimal {
		env[k] = v
	}
	t.Run("set", func(t *testing.T) { // its own environment
		cfg, err := parse(t, all, env)
		require.NoError(t, err)
		require.Equal(t, 7*24*time.Hour, cfg.Privacy.DeletedRecordRetention)
		require.Zero(t, cfg.Privacy.ChangeValuesRetention, "0 switches it off")
		require.Equal(t, 36*time.Hour, cfg.Privacy.WebhookEventsRetention)
		require.NotContains(t, cfg.String(), "secret-hash-key", "the hash key is never printed")
	})

	for setting, want := range map[string]string{
		"DELETED_RECORD_RETENTION": "days must be a whole number",
		"CHANGE_VALUES_RETENTION":  "a duration like 30d",
		"RETENTION_BATCH_SIZE":     "RETENTION_BATCH_SIZE must be between 1 and 100000",
		"FIELD_POLICY_HASH_KEY":    "FIELD_POLICY_FILE is not",
	} {
		bad := map[string]string{setting: map[string]string{"DELETED_RECORD_RETENTION": "1.5d", "CHANGE_VALUES_RETENTION": "soon",
			"RETENTION_BATCH_SIZE": "0", "FIELD_POLICY_HASH_KEY": "k"}[setting]}
		for k, v := range minimal {
			bad[k] = v
		}
		t.Run(setting, func(t *testing.T) { // its own environment
			cfg, err := parse(t, all, bad)
			if err == nil {
				err = cfg.Validate()
			}
			require.ErrorContains(t, err, want)
		})
	}
}

// The outbound and back-office settings: defaults, and every problem reported; tokens never printed.
func TestOutboundAndAPISettings(t *testing.T) {
	cfg, err := parse(t, config.PartOutbound|config.PartAPI, map[string]string{"API_TOKENS": strings.Repeat("a", 32) + ", " + strings.Repeat("b", 40)})
	require.NoError(t, err)
	require.Equal(t, config.Outbound{Timeout: 10 * time.Second, MaxBackoff: 6 * time.Hour, GiveUpAfter: 72 * time.Hour}, cfg.Outbound)
	require.Equal(t, ":8088", cfg.API.ListenAddr)
	require.Len(t, cfg.API.Tokens, 2, "comma-separated for rotation")
	require.NotContains(t, cfg.String(), strings.Repeat("a", 32))

	_, err = parse(t, config.PartOutbound|config.PartAPI, map[string]string{"API_TOKENS": "short", "API_LISTEN_ADDR": "nowhere",
		"OUTBOUND_TIMEOUT": "1ms", "OUTBOUND_MAX_BACKOFF": "0s", "OUTBOUND_GIVE_UP_AFTER": "3d"})
	require.Error(t, err)
	for _, want := range []string{"API_TOKENS: token 1 is shorter than 32 characters", "API_LISTEN_ADDR must be [host]:port",
		"OUTBOUND_TIMEOUT must be between 100ms and 2m", "OUTBOUND_MAX_BACKOFF must be at least 1s"} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "OUTBOUND_GIVE_UP_AFTER", "3d is a duration in days")
	t.Run("no token", func(t *testing.T) { // t.Setenv holds for the whole test: a subtest of its own
		t.Setenv("API_TOKENS", "")
		t.Setenv("API_LISTEN_ADDR", ":8088")
		_, err := parse(t, config.PartAPI, nil)
		require.ErrorContains(t, err, "API_TOKENS is required")
	})
}
