package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"go.temporal.io/sdk/contrib/envconfig"
)

// temporalFlags are Temporal's own client settings beyond address and namespace, under the names
// Temporal's tools read (the temporal CLI, the SDKs' contrib/envconfig), so one environment or
// profile file serves kombosync and the CLI alike. Each is a flag whose environment variable is
// derived from its name, as every setting here.
var temporalFlags = []struct {
	name, usage string
	secret      bool
}{
	{"temporal-config-file", "Temporal client profile file (TOML, as the temporal CLI reads it; env TEMPORAL_CONFIG_FILE; default the CLI's own path, when it exists)", false},
	{"temporal-profile", "profile of that file to use (env TEMPORAL_PROFILE; default \"default\")", false},
	{"temporal-api-key", "Temporal Cloud API key; prefer the env var TEMPORAL_API_KEY (never logged); turns TLS on unless TEMPORAL_TLS=false", true},
	{"temporal-tls", "true or false: TLS to the frontend (env TEMPORAL_TLS; default on when any TEMPORAL_TLS_* or an API key is set)", false},
	{"temporal-tls-client-cert-path", "client certificate (PEM) for mutual TLS, re-read when the file changes (env TEMPORAL_TLS_CLIENT_CERT_PATH)", false},
	{"temporal-tls-client-key-path", "its private key (PEM), re-read with it (env TEMPORAL_TLS_CLIENT_KEY_PATH)", false},
	{"temporal-tls-client-cert-data", "client certificate inline, PEM (env TEMPORAL_TLS_CLIENT_CERT_DATA)", false},
	{"temporal-tls-client-key-data", "its private key inline, PEM; prefer the env var TEMPORAL_TLS_CLIENT_KEY_DATA (never logged)", true},
	{"temporal-tls-server-ca-cert-path", "CA certificate(s) (PEM) the frontend's certificate must chain to; the system's roots when unset (env TEMPORAL_TLS_SERVER_CA_CERT_PATH)", false},
	{"temporal-tls-server-ca-cert-data", "the same, inline (env TEMPORAL_TLS_SERVER_CA_CERT_DATA)", false},
	{"temporal-tls-server-name", "name the frontend's certificate must carry, when it is not the address's host (env TEMPORAL_TLS_SERVER_NAME)", false},
	{"temporal-tls-disable-host-verification", "true: accept any frontend certificate (testing only; env TEMPORAL_TLS_DISABLE_HOST_VERIFICATION)", false},
}

// registerTemporal declares the Temporal connection flags; their values land in c.temporal.
func registerTemporal(fs *flag.FlagSet, c *Config) {
	c.temporal = map[string]Secret{}
	for _, f := range temporalFlags {
		fs.Func(f.name, f.usage, func(v string) error {
			if v = strings.TrimSpace(v); v == "" {
				delete(c.temporal, f.name) // empty counts as unset
			} else {
				c.temporal[f.name] = Secret(v)
			}
			return nil
		})
	}
}

// TemporalProfile is the Temporal client profile the programs connect with: the profile file's
// (when there is one), overridden by every TEMPORAL_* setting given by environment or flag, as
// Temporal's own tools merge them. Valid after Parse.
func (c *Config) TemporalProfile() envconfig.ClientConfigProfile {
	p := c.temporalProfile
	if p.Address == "" { // a Config built in code, not parsed
		p.Address, p.Namespace = c.TemporalAddress, c.TemporalNamespace
	}
	return p
}

// loadTemporalProfile merges the profile file and the settings into c.temporalProfile.
func (c *Config) loadTemporalProfile(set map[string]bool) error {
	get := func(name string) string { return c.temporal[name].Reveal() }
	file := get("temporal-config-file")
	if file == "" {
		// The CLI's default path, only when it exists: no file is the common case.
		if p := envconfig.DefaultConfigFilePath(); p != "" {
			if _, err := os.Stat(p); err == nil {
				file = p
			}
		}
	}
	var prof envconfig.ClientConfigProfile
	if file != "" {
		var err error
		prof, err = envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
			ConfigFilePath: file, ConfigFileProfile: get("temporal-profile"), DisableEnv: true})
		if err != nil {
			return fmt.Errorf("TEMPORAL_CONFIG_FILE %s: %w", file, err)
		}
	} else if p := get("temporal-profile"); p != "" && p != envconfig.DefaultConfigFileProfile {
		return fmt.Errorf("TEMPORAL_PROFILE %q names a profile, but there is no profile file (TEMPORAL_CONFIG_FILE)", p)
	}
	// kombosync's own address and namespace settings: their defaults only when neither the
	// file nor the environment or a flag gave one.
	if set["temporal-address"] || prof.Address == "" {
		prof.Address = c.TemporalAddress
	}
	if set["temporal-namespace"] || prof.Namespace == "" {
		prof.Namespace = c.TemporalNamespace
	}
	c.TemporalAddress, c.TemporalNamespace = prof.Address, prof.Namespace
	if v, ok := c.temporal["temporal-api-key"]; ok {
		prof.APIKey = v.Reveal()
	}
	tlsSet := func() *envconfig.ClientConfigTLS {
		if prof.TLS == nil {
			prof.TLS = &envconfig.ClientConfigTLS{}
		}
		return prof.TLS
	}
	var errs []error
	for _, f := range temporalFlags {
		v, ok := c.temporal[f.name]
		if !ok || !strings.HasPrefix(f.name, "temporal-tls") {
			continue
		}
		s := v.Reveal()
		switch f.name {
		case "temporal-tls", "temporal-tls-disable-host-verification":
			b, err := parseBool(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.name), err))
				continue
			}
			if f.name == "temporal-tls" {
				tlsSet().Disabled = !b
			} else {
				tlsSet().DisableHostVerification = b
			}
		case "temporal-tls-client-cert-path":
			tlsSet().ClientCertPath = s
		case "temporal-tls-client-key-path":
			tlsSet().ClientKeyPath = s
		case "temporal-tls-client-cert-data":
			tlsSet().ClientCertData = []byte(s)
		case "temporal-tls-client-key-data":
			tlsSet().ClientKeyData = []byte(s)
		case "temporal-tls-server-ca-cert-path":
			tlsSet().ServerCACertPath = s
		case "temporal-tls-server-ca-cert-data":
			tlsSet().ServerCACertData = []byte(s)
		case "temporal-tls-server-name":
			tlsSet().ServerName = s
		}
	}
	if _, _, err := net.SplitHostPort(prof.Address); err != nil {
		errs = append(errs, fmt.Errorf("TEMPORAL_ADDRESS must be host:port, not %q", prof.Address))
	}
	if prof.Namespace == "" {
		errs = append(errs, errors.New("TEMPORAL_NAMESPACE must not be empty"))
	}
	// The TLS settings are checked as the client will use them: certificates read and parsed.
	if _, err := prof.ToClientOptions(envconfig.ToClientOptionsRequest{}); err != nil {
		errs = append(errs, fmt.Errorf("Temporal TLS settings: %w", err))
	}
	c.temporalProfile = prof
	return errors.Join(errs...)
}

// TemporalMode describes how the programs connect to Temporal, for their start-up log line:
// "plaintext", "tls", "mtls", "api key over tls" or "api key without tls". It names no secret.
func TemporalMode(p envconfig.ClientConfigProfile) string {
	tlsOn := p.TLS != nil && !p.TLS.Disabled || p.TLS == nil && p.APIKey != ""
	switch {
	case p.APIKey != "" && tlsOn:
		return "api key over tls"
	case p.APIKey != "":
		return "api key without tls"
	case tlsOn && (p.TLS.ClientCertPath != "" || len(p.TLS.ClientCertData) > 0):
		return "mtls"
	case tlsOn:
		return "tls"
	}
	return "plaintext"
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("must be true or false, not %q", s)
}

func envName(flagName string) string { return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_")) }
