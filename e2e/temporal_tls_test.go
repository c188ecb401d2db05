package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kombosync/kombosync/internal/testenv"
	"github.com/kombosync/kombosync/internal/teststack"
	"github.com/kombosync/kombosync/kombo"
	"github.com/kombosync/kombosync/komboemu"
)

// The worker, the gateway and the starter reach Temporal through a TLS endpoint that demands a
// client certificate: the integration syncs, the starter answers, a rotated certificate is used
// on the next connection without a restart, and without a certificate every program is refused
// with an error that says so.
func TestProgramsReachTemporalOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	first := ca.issue(t, "client", false)
	proxy := startMTLSProxy(t, ca, testenv.TemporalAddress(t))
	tlsEnv := teststack.Env("TEMPORAL_ADDRESS", proxy.addr, "TEMPORAL_TLS_SERVER_CA_CERT_PATH", ca.certPath)
	env := slices.Concat(tlsEnv, teststack.Env("TEMPORAL_TLS_CLIENT_CERT_PATH", first.certPath,
		"TEMPORAL_TLS_CLIENT_KEY_PATH", first.keyPath))
	s := newStack(t, teststack.Options{ProgramEnv: env, Secrets: []string{first.keySecret()}})

	const id = "personio:e2e-mtls"
	s.terminateAtEnd(t, id)
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 40, Seed: 3, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	require.Contains(t, s.Starter(t, "integration", "status", id), "employees")
	require.True(t, proxy.saw(first.serial), "the programs presented the client certificate")
	require.Contains(t, s.Worker.Output(), `"mode":"mtls"`, "the worker says how it connects")

	// Rotation: new files at the same paths; the next handshake presents the new certificate.
	second := ca.issue(t, "client-next", false)
	replaceFile(t, first.certPath, second.certPath)
	replaceFile(t, first.keyPath, second.keyPath)
	proxy.dropAll()
	_, err := s.Emu.MutateRandom(id, 5)
	require.NoError(t, err)
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	teststack.Eventually(t, time.Minute, func() string {
		if proxy.saw(second.serial) {
			return ""
		}
		return "no connection has presented the rotated certificate"
	})
	require.Contains(t, s.Starter(t, "integration", "status", id), "employees")

	// A certificate the server does not accept (another CA's): /readyz names the handshake.
	stranger := newTestCA(t).issue(t, "stranger", false)
	replaceFile(t, first.certPath, stranger.certPath)
	replaceFile(t, first.keyPath, stranger.keyPath)
	proxy.dropAll()
	teststack.WaitHTTPBody(t, s.Gateway, s.GatewayURL+"/readyz", http.StatusServiceUnavailable, "temporal: TLS handshake failed")

	// No client certificate: refused, and each program says a client certificate is wanted.
	refused := slices.Concat(tlsEnv, teststack.Env("DATABASE_URL", s.DatabaseURL, "KOMBO_API_KEY", "k",
		"KOMBO_WEBHOOK_SECRET", "w", "METRICS_LISTEN_ADDR", "off", "WEBHOOK_LISTEN_ADDR", "127.0.0.1:0"))
	for _, program := range [][]string{{"worker"}, {"webhookgw"}, {"starter", "integration", "sync", id}} {
		code, out := teststack.RunToEnd(t, program[0], refused, program[1:]...)
		require.NotEqual(t, 0, code, "%s: %s", program[0], out)
		require.Contains(t, out, "client certificate", "%s: %s", program[0], out)
	}
}

// With an API key, the programs send it as a bearer token over TLS, and a wrong key is refused
// with an error that names the credentials.
func TestProgramsReachTemporalWithAnAPIKey(t *testing.T) {
	t.Parallel()
	const key = "e2e-temporal-api-key-never-logged"
	ca := newTestCA(t)
	proxy := startAPIKeyProxy(t, ca, key, testenv.TemporalAddress(t))
	env := teststack.Env("TEMPORAL_ADDRESS", proxy, "TEMPORAL_TLS_SERVER_CA_CERT_PATH", ca.certPath, "TEMPORAL_API_KEY", key)
	s := newStack(t, teststack.Options{ProgramEnv: env, Secrets: []string{key}})

	const id = "personio:e2e-api-key"
	s.terminateAtEnd(t, id)
	require.NoError(t, s.Emu.CreateIntegration(komboemu.IntegrationSpec{ID: id, Category: kombo.CategoryHRIS, Records: 40, Seed: 3, Notify: true}))
	s.WaitInSync(t, id, kombo.CategoryHRIS, time.Minute)
	require.Contains(t, s.Starter(t, "integration", "status", id), "employees")
	require.Contains(t, s.Gateway.Output(), `"mode":"api key over tls"`)

	wrong := teststack.Env("TEMPORAL_ADDRESS", proxy, "TEMPORAL_TLS_SERVER_CA_CERT_PATH", ca.certPath,
		"TEMPORAL_API_KEY", "not-the-key", "DATABASE_URL", s.DatabaseURL, "KOMBO_API_KEY", "k", "METRICS_LISTEN_ADDR", "off")
	for _, program := range [][]string{{"worker"}, {"starter", "integration", "sync", id}} {
		code, out := teststack.RunToEnd(t, program[0], wrong, program[1:]...)
		require.NotEqual(t, 0, code, "%s: %s", program[0], out)
		require.Contains(t, out, "the server refused the credentials", "%s: %s", program[0], out)
		require.NotContains(t, out, "not-the-key")
	}
}

// testCA issues certificates for the test's TLS endpoints and clients, as PEM files.
type testCA struct {
	dir      string
	certPath string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	pool     *x509.CertPool
}

type issued struct {
	certPath, keyPath string
	serial            string
	pair              tls.Certificate
}

// keySecret is a line of the private key's PEM, which no program may log.
func (i issued) keySecret() string {
	b, _ := os.ReadFile(i.keyPath)
	lines := strings.Split(string(b), "\n")
	return lines[1]
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kombosync test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{dir: t.TempDir(), cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.certPath = filepath.Join(ca.dir, "ca.crt")
	writePEM(t, ca.certPath, "CERTIFICATE", der)
	return ca
}

var serials struct {
	sync.Mutex
	n int64
}

// issue signs a certificate: a server's for 127.0.0.1 and localhost, or a client's.
func (ca *testCA) issue(t *testing.T, name string, server bool) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serials.Lock()
	serials.n++
	serial := big.NewInt(1000 + serials.n)
	serials.Unlock()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses, tmpl.DNSNames = []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	out := issued{certPath: filepath.Join(ca.dir, name+".crt"), keyPath: filepath.Join(ca.dir, name+".key"), serial: serial.String()}
	writePEM(t, out.certPath, "CERTIFICATE", der)
	writePEM(t, out.keyPath, "PRIVATE KEY", keyDER)
	out.pair, err = tls.LoadX509KeyPair(out.certPath, out.keyPath)
	require.NoError(t, err)
	return out
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// replaceFile puts src's content at dst in one rename, as a certificate rotation does.
func replaceFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	tmp := dst + ".new"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, dst))
}

// mtlsProxy terminates TLS, demanding a client certificate the test CA signed, and forwards the
// bytes in plaintext to the dev server. It remembers the serial of every client certificate.
type mtlsProxy struct {
	addr string

	mu      sync.Mutex
	serials map[string]bool
	conns   []net.Conn
}

func startMTLSProxy(t *testing.T, ca *testCA, target string) *mtlsProxy {
	t.Helper()
	server := ca.issue(t, "server", true)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{server.pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	p := &mtlsProxy{addr: ln.Addr().String(), serials: map[string]bool{}}
	t.Cleanup(func() { ln.Close(); p.dropAll() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c.(*tls.Conn), target)
		}
	}()
	return p
}

func (p *mtlsProxy) serve(c *tls.Conn, target string) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return // refused: no or a wrong client certificate
	}
	p.mu.Lock()
	for _, cert := range c.ConnectionState().PeerCertificates[:1] {
		p.serials[cert.SerialNumber.String()] = true
	}
	p.conns = append(p.conns, c)
	p.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
}

func (p *mtlsProxy) saw(serial string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.serials[serial]
}

// dropAll closes every connection: the clients connect again, with a new handshake.
func (p *mtlsProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// startAPIKeyProxy serves gRPC over TLS (server certificate only) and forwards every call to the
// dev server when its authorization metadata is "Bearer <key>"; any other call is refused with
// Unauthenticated, as Temporal Cloud refuses a wrong key. It returns its address.
func startAPIKeyProxy(t *testing.T, ca *testCA, key, target string) string {
	t.Helper()
	server := ca.issue(t, "server", true)
	backend, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	require.NoError(t, err)
	t.Cleanup(func() { backend.Close() })
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&server.pair)), grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(ss)
			md, _ := metadata.FromIncomingContext(ss.Context())
			if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+key {
				return status.Error(codes.Unauthenticated, "invalid API key")
			}
			out := metadata.MD{}
			for k, v := range md {
				if !slices.Contains([]string{"authorization", "content-type", "user-agent", ":authority", "te"}, k) &&
					!strings.HasPrefix(k, "grpc-") {
					out[k] = v
				}
			}
			cs, err := backend.NewStream(metadata.NewOutgoingContext(ss.Context(), out),
				&grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
			if err != nil {
				return err
			}
			go func() {
				for {
					var m []byte
					if err := ss.RecvMsg(&m); err != nil {
						_ = cs.CloseSend()
						return
					}
					if err := cs.SendMsg(&m); err != nil {
						return
					}
				}
			}()
			for {
				var m []byte
				if err := cs.RecvMsg(&m); err != nil {
					ss.SetTrailer(cs.Trailer())
					if err == io.EOF {
						return nil
					}
					return err
				}
				if err := ss.SendMsg(&m); err != nil {
					return err
				}
			}
		}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// rawCodec passes gRPC messages through as bytes.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }
