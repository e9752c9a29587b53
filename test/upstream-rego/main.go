// Command upstream-rego evaluates upstream NSM's own authorization policies (the rego files embedded in
// github.com/networkservicemesh/sdk's pkg/tools/opa, through the sdk's own PolicyFromFile/Check) for
// inputs read from stdin, one JSON object per line, and prints one verdict per line; a line with "mint"
// instead asks the sdk's spiffejwt token generator for a token. nsm-ts's test/upstream-policies.test.ts
// feeds it the same inputs as its TypeScript policies and token code and compares.
// Build it outside the repository's tree of sources (a Go module cache); it is a test tool, not a product.
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/networkservicemesh/sdk/pkg/tools/opa"
	"github.com/networkservicemesh/sdk/pkg/tools/spiffejwt"
)

type query struct {
	// Policy is the upstream path, e.g. "etc/nsm/opa/common/tokens_valid.rego".
	Policy string `json:"policy"`
	// Input is the model the authorize element passes (path or registry input).
	Input map[string]interface{} `json:"input"`
	// PeerCert is the TLS peer's certificate (PEM); empty for a call without one.
	PeerCert string `json:"peerCert"`
	// Mint, when set, asks for a token instead of a verdict.
	Mint *mint `json:"mint,omitempty"`
}

type mint struct {
	CertPEM         string `json:"certPem"`
	KeyPEM          string `json:"keyPem"`
	LifetimeSeconds int    `json:"lifetimeSeconds"`
}

type verdict struct {
	Allowed bool   `json:"allowed"`
	Error   string `json:"error,omitempty"`
	Token   string `json:"token,omitempty"`
	Expires string `json:"expires,omitempty"`
}

func parseCert(text string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// issue runs upstream's token generator with the SVID of m, for the peer certificate peerPEM (if any).
func issue(m *mint, peerPEM string) verdict {
	cert, err := parseCert(m.CertPEM)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	block, _ := pem.Decode([]byte(m.KeyPEM))
	if block == nil {
		return verdict{Error: "keyPem is not PEM"}
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	id, err := x509svid.IDFromCert(cert)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	svid := &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key.(crypto.Signer)}
	var authInfo credentials.AuthInfo
	if peerPEM != "" {
		peerCert, peerErr := parseCert(peerPEM)
		if peerErr != nil {
			return verdict{Error: peerErr.Error()}
		}
		authInfo = credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{peerCert}}}
	}
	tok, expires, err := spiffejwt.TokenGeneratorFunc(svid, time.Duration(m.LifetimeSeconds)*time.Second)(authInfo)
	if err != nil {
		return verdict{Error: err.Error()}
	}
	return verdict{Token: tok, Expires: expires.UTC().Format(time.RFC3339Nano)}
}

// policies are compiled once per file (the sdk compiles a policy on its first Check).
var policies = map[string]*opa.AuthorizationPolicy{}

func check(q *query) verdict {
	if q.Mint != nil {
		return issue(q.Mint, q.PeerCert)
	}
	p, ok := policies[q.Policy]
	if !ok {
		var err error
		if p, err = opa.PolicyFromFile(q.Policy); err != nil {
			return verdict{Error: err.Error()}
		}
		policies[q.Policy] = p
	}
	ctx := context.Background()
	if q.PeerCert != "" {
		cert, certErr := parseCert(q.PeerCert)
		if certErr != nil {
			return verdict{Error: certErr.Error()}
		}
		state := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
		ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
	}
	if err := p.Check(ctx, q.Input); err != nil {
		return verdict{Allowed: false, Error: err.Error()}
	}
	return verdict{Allowed: true}
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var q query
		if err := json.Unmarshal(in.Bytes(), &q); err != nil {
			_ = out.Encode(verdict{Error: fmt.Sprintf("bad query: %v", err)})
			continue
		}
		_ = out.Encode(check(&q))
	}
}
