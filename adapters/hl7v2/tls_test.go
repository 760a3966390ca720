package hl7v2

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// cert issues a certificate for name signed by parent (self-signed when parent is nil).
func cert(t *testing.T, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(100 * 365 * 24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSClientCertificates: with client certificates required, a sender without one is refused
// at the handshake and a sender with one signed by the CA is served.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	ca, caKey, _ := cert(t, "test CA", nil, nil, true)
	_, _, serverCert := cert(t, "billy", ca, caKey, false)
	_, _, clientCert := cert(t, "ehr", ca, caKey, false)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s, _ := startServer(t) // the plain listener is not used; the same store serves the TLS one
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsServer := &Server{Store: s.Store, Pool: s.Pool, Validate: s.Validate, Base: s.Base, Keys: s.Keys, Now: s.Now,
		TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
			Time: func() time.Time { return testNow }}} // certificates are checked against the test's clock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tlsServer.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()

	send := func(certs []tls.Certificate) (string, error) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
			Time: func() time.Time { return testNow }})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		msg := message(msh("ADT^A04^ADT_A01", "T1"), pid("MRN600", "Tls", "19900101", "F"), pv1("O", "V600", "", ""))
		if _, err := c.Write(Frame([]byte(msg))); err != nil {
			return "", err
		}
		raw, err := ReadFrame(bufio.NewReader(c))
		if err != nil {
			return "", err
		}
		m, err := Parse(raw)
		if err != nil {
			return "", err
		}
		return ackCode(m), nil
	}
	if code, err := send(nil); err == nil {
		t.Errorf("a sender without a client certificate got %s", code)
	}
	if code, err := send([]tls.Certificate{clientCert}); err != nil || code != AA {
		t.Errorf("a sender with a client certificate: %s %v", code, err)
	}
}
