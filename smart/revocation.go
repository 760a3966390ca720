package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// errUnknownToken is a token there is nothing to revoke for: unknown, invalid, expired or already
// revoked. RFC 7009 answers it with 200.
var errUnknownToken = errors.New("no such token (unknown, invalid, expired or already revoked)")

// errOtherClient refuses the revocation of a token issued to another client (RFC 7009 section 2.1).
var errOtherClient = errors.New("the token was issued to another client")

// revokeToken revokes the grant of an access token (a JWT signed by Billy, found by its jti) or a
// refresh token (found by its signature) for clientID, or for anyone when clientID is empty (the
// administrator's "billy dev-token --revoke"). It returns the token's client when it refuses with
// errOtherClient, and errUnknownToken for a token Billy does not know or cannot read (nothing to
// revoke: the endpoint answers 200, the administrator's tool says so).
func (s *Server) revokeToken(ctx context.Context, tok, clientID string) (owner string, err error) {
	if strings.Count(tok, ".") == 2 {
		return s.revokeAccessToken(ctx, tok, clientID)
	}
	var requestID string
	err = s.pool.QueryRow(ctx, `SELECT client_id, request_id FROM oauth_requests WHERE kind = 'refresh' AND signature = $1`,
		s.refreshSignature(ctx, tok)).Scan(&owner, &requestID)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", errUnknownToken
	}
	if err != nil {
		return "", err
	}
	if clientID != "" && owner != clientID {
		return owner, errOtherClient
	}
	return "", s.revokeRequest(ctx, requestID)
}

func (s *Server) revokeAccessToken(ctx context.Context, tok, clientID string) (string, error) {
	p, err := s.verifier.Verify(ctx, tok)
	if err != nil || p.External {
		return "", errUnknownToken // invalid, expired, already revoked, or not Billy's
	}
	owner, requestID := p.ClientID, ""
	err = s.pool.QueryRow(ctx, `SELECT client_id, request_id FROM oauth_requests WHERE kind = 'access' AND jti = $1`, p.TokenID).Scan(&owner, &requestID)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", err
	}
	if clientID != "" && owner != clientID {
		return owner, errOtherClient
	}
	if requestID != "" {
		return "", s.revokeRequest(ctx, requestID)
	}
	// A token signed before minted tokens were recorded: record it revoked, so the revocation list
	// has its jti until it expires.
	return "", s.store.recordToken(ctx, tok, p.TokenID, p.ClientID, p.Subject, p.Expiry, false)
}

// revokeRequest revokes every access and refresh token of a grant.
func (s *Server) revokeRequest(ctx context.Context, requestID string) error {
	_, err := s.pool.Exec(ctx, `UPDATE oauth_requests SET active = false WHERE request_id = $1 AND kind IN ('access', 'refresh')`, requestID)
	return err
}

// RevokeToken revokes an access or refresh token whichever client it was issued to: the
// administrator's tool behind "billy dev-token --revoke" (whoever runs it holds the database and
// the master key).
func (s *Server) RevokeToken(ctx context.Context, tok string) error {
	tok = strings.TrimSpace(tok)
	if strings.Count(tok, ".") == 2 {
		if err := checkCanonicalJWS(tok); err != nil {
			return err
		}
		if _, err := s.verifier.Verify(ctx, tok); err != nil {
			return fmt.Errorf("nothing to revoke: %w", err)
		}
	}
	if _, err := s.revokeToken(ctx, tok, ""); err != nil {
		return fmt.Errorf("nothing to revoke: %w", err)
	}
	return nil
}

// recordToken records an access token Billy signed outside fosite's flows (token exchange,
// MintToken) the way fosite's are, so that introspection and revocation find it by its jti.
func (st *storage) recordToken(ctx context.Context, tok, jti, clientID, subject string, exp time.Time, active bool) error {
	sess := newSession("")
	sess.Subject, sess.ClientID, sess.JTI = subject, clientID, jti
	data, err := json.Marshal(storedRequest{ID: jti, RequestedAt: st.now(), ClientID: clientID, Session: sess})
	if err != nil {
		return err
	}
	_, err = st.pool.Exec(ctx, `INSERT INTO oauth_requests (signature, kind, request_id, client_id, data, expires_at, jti, active)
		VALUES ($1, 'access', $2, $3, $4, $5, $2, $6) ON CONFLICT DO NOTHING`, signatureOf(tok), jti, clientID, data, exp, active)
	return err
}
