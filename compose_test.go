package kombosync_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/kombosync/kombosync/config"
)

// No Docker engine runs here, so the compose file is proven with the compose-spec loader that
// docker compose itself uses: it must load, name every service and wire their start order.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"docker-compose.yml"},
		cli.WithWorkingDirectory("."), cli.WithEnv([]string{}), cli.WithName("kombosync"))
	require.NoError(t, err)
	project, err := opts.LoadProject(t.Context())
	require.NoError(t, err)
	return project
}

func TestComposeFileNamesEveryService(t *testing.T) {
	project := loadCompose(t)
	want := []string{
		"postgresql", "temporal-admin-tools", "temporal", "temporal-create-namespace", "temporal-ui",
		"kombo-migrate", "worker", "webhookgw", "komboemu", "backoffice",
	}
	got := project.ServiceNames()
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got)

	for _, name := range got {
		svc := project.Services[name]
		require.NotContains(t, svc.Image, "auto-setup", "%s: the auto-setup image is deprecated", name)
	}
	for _, name := range []string{"postgresql", "temporal", "temporal-ui", "worker", "webhookgw", "komboemu", "backoffice"} {
		require.NotNil(t, project.Services[name].HealthCheck, "%s needs a health check", name)
	}
	for _, name := range []string{"kombo-migrate", "worker", "webhookgw", "komboemu", "backoffice"} {
		require.NotNil(t, project.Services[name].Build, "%s must be built from this repository", name)
	}
}

func TestComposeStartOrder(t *testing.T) {
	project := loadCompose(t)
	cases := []struct{ service, dependency, condition string }{
		{"temporal-admin-tools", "postgresql", types.ServiceConditionHealthy},
		{"temporal", "temporal-admin-tools", types.ServiceConditionCompletedSuccessfully},
		{"temporal-create-namespace", "temporal", types.ServiceConditionHealthy},
		{"temporal-ui", "temporal", types.ServiceConditionHealthy},
		{"kombo-migrate", "postgresql", types.ServiceConditionHealthy},
		{"worker", "kombo-migrate", types.ServiceConditionCompletedSuccessfully},
		{"worker", "temporal-create-namespace", types.ServiceConditionCompletedSuccessfully},
		{"webhookgw", "kombo-migrate", types.ServiceConditionCompletedSuccessfully},
		{"webhookgw", "temporal-create-namespace", types.ServiceConditionCompletedSuccessfully},
		{"backoffice", "kombo-migrate", types.ServiceConditionCompletedSuccessfully},
		{"backoffice", "temporal-create-namespace", types.ServiceConditionCompletedSuccessfully},
	}
	for _, c := range cases {
		dep, ok := project.Services[c.service].DependsOn[c.dependency]
		require.True(t, ok, "%s must depend on %s", c.service, c.dependency)
		require.Equal(t, c.condition, dep.Condition, "%s → %s", c.service, c.dependency)
	}
}

func TestComposeMountsExistingFiles(t *testing.T) {
	project := loadCompose(t)
	for name, svc := range project.Services {
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			_, err := os.Stat(v.Source)
			require.NoError(t, err, "%s mounts %s", name, v.Source)
		}
	}
	for _, script := range []string{"setup-temporal-schema.sh", "create-namespace.sh"} {
		fi, err := os.Stat(filepath.Join("deploy", "compose", script))
		require.NoError(t, err)
		require.NotZero(t, fi.Mode()&0o111, "%s must be executable", script)
	}
}

// The kombosync services may only set variables their programs read, so a renamed setting
// cannot silently fall back to its default in the compose stack.
func TestComposeEnvironmentMatchesConfiguration(t *testing.T) {
	project := loadCompose(t)
	programs := map[string]config.Part{
		"kombo-migrate": config.PartDatabase,
		"worker": config.PartDatabase | config.PartTemporal | config.PartKomboAPI | config.PartSync |
			config.PartMetrics | config.PartLog | config.PartPrivacy | config.PartOutbound,
		"webhookgw":  config.PartDatabase | config.PartTemporal | config.PartWebhook | config.PartLog,
		"backoffice": config.PartDatabase | config.PartTemporal | config.PartOutbound | config.PartAPI | config.PartKomboAPI | config.PartLog,
	}
	for name, parts := range programs {
		known := config.EnvVars(parts)
		for key := range project.Services[name].Environment {
			require.True(t, slices.Contains(known, key), "%s sets %s, which it does not read (reads %s)",
				name, key, strings.Join(known, ", "))
		}
	}
}
