package httpguard

import (
	"crypto/tls"
	"fmt"
)

// ServerTLS loads a PEM certificate chain and key for a listener (HTTP or MLLP) that accepts TLS 1.2
// and newer only. Go's default cipher suites for TLS 1.2 are the AEAD ones with forward secrecy.
func ServerTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate (BILLY_TLS_CERT_FILE, BILLY_TLS_KEY_FILE): %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}
