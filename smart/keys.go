package smart

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/iambilly/billy/internal/crypto"
)

// keyLifetime is how long a signing key signs new tokens before a new one replaces it. Retired keys
// stay in the JWKS for a day so tokens they signed still verify.
const (
	keyLifetime  = 30 * 24 * time.Hour
	keyRetention = 24 * time.Hour
	signingAlg   = "RS256"
)

// derive makes a purpose-bound key from a master key (HMAC-SHA256). Billy used it for the signing-key
// seal and the token secrets before they were sealed by the keyring; it is only read for keys and
// secrets stored by those versions (legacyDerived).
func derive(master []byte, purpose string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("billy/smart/" + purpose))
	return m.Sum(nil)
}

// legacyDerived is derive(master, purpose) for every master key of kr, current first.
func legacyDerived(kr *crypto.Keyring, purpose string) [][]byte {
	return kr.HMACs("billy/smart/" + purpose)
}

// sealer encrypts the private parts of signing keys at rest under the master keyring, and opens the
// ones earlier versions sealed under a key derived from the master key.
type sealer struct{ kr *crypto.Keyring }

func newSealer(kr *crypto.Keyring) *sealer { return &sealer{kr: kr} }

func (s *sealer) seal(plain []byte, aad string) []byte {
	out, _ := s.kr.Seal(plain, []byte("smart-key:"+aad)) // Seal cannot fail with a parsed keyring
	return out
}

// open opens a sealed signing key, in the keyring format or the legacy one.
func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	if _, err := crypto.SealedKeyID(sealed); err == nil {
		return s.kr.Open(sealed, []byte("smart-key:"+aad))
	}
	for _, k := range legacyDerived(s.kr, "key-seal") {
		if plain, err := legacyOpen(k, sealed, aad); err == nil {
			return plain, nil
		}
	}
	return nil, errors.New("no master key opens the sealed key")
}

// legacyOpen opens what earlier versions sealed: nonce || AES-256-GCM(derived key) with aad.
func legacyOpen(key, sealed []byte, aad string) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	return aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
}

// Secrets the authorization server keeps sealed in sealed_secrets: fosite's HMAC secret (the
// signature of authorization codes and refresh tokens) and the key of login tickets. They were derived
// from the master key, so rotating it broke every refresh token; stored, they survive rotation.
const (
	secretFosite      = "smart/fosite"
	secretLoginTicket = "smart/login-ticket"
)

// secret returns the sealed secret name, creating it on first use: random on a new installation, the
// value earlier versions derived from the current master key on one that already has signing keys (so
// the refresh tokens it issued stay valid). Call it inside load's lock (tx holds it).
func (k *keyring) secret(ctx context.Context, tx pgx.Tx, name, legacyPurpose string) ([]byte, error) {
	var sealed []byte
	err := tx.QueryRow(ctx, `SELECT sealed FROM sealed_secrets WHERE name = $1`, name).Scan(&sealed)
	if err == nil {
		v, err := k.sealer.kr.Open(sealed, []byte("secret:"+name))
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w (start with the master key the server runs with)", name, err)
		}
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	var upgraded bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM smart_keys)`).Scan(&upgraded); err != nil {
		return nil, err
	}
	v := make([]byte, 32)
	if upgraded {
		v = legacyDerived(k.sealer.kr, legacyPurpose)[0]
	} else {
		_, _ = rand.Read(v)
	}
	sealed, _ = k.sealer.kr.Seal(v, []byte("secret:"+name))
	if _, err := tx.Exec(ctx, `INSERT INTO sealed_secrets (name, sealed) VALUES ($1, $2)`, name, sealed); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	return v, nil
}

// secrets loads (or makes) the server's stored secrets, under the lock load takes.
func (k *keyring) secrets(ctx context.Context) (fositeSecret, ticket []byte, err error) {
	tx, err := k.pool.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(727002)`); err != nil {
		return nil, nil, err
	}
	if fositeSecret, err = k.secret(ctx, tx, secretFosite, "fosite"); err != nil {
		return nil, nil, err
	}
	if ticket, err = k.secret(ctx, tx, secretLoginTicket, "login-ticket"); err != nil {
		return nil, nil, err
	}
	return fositeSecret, ticket, tx.Commit(ctx)
}

// ResealReport counts what Reseal did.
type ResealReport struct {
	// SigningKeys and Secrets are how many were sealed again under the current master key.
	SigningKeys, Secrets int
	// Current is how many already were.
	Current int
}

// Reseal seals every stored signing key (retired ones too) and secret under kr's current master key,
// for a master key rotation. A value already under it is left alone, so Reseal may run again after an
// interruption. It takes the lock load takes, so no process makes a key meanwhile.
func Reseal(ctx context.Context, pool *pgxpool.Pool, kr *crypto.Keyring) (ResealReport, error) {
	var rep ResealReport
	s := newSealer(kr)
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(727002)`); err != nil {
			return err
		}
		type row struct {
			table, id string
			sealed    []byte
		}
		var rows []row
		for _, q := range []struct{ table, sql string }{
			{"smart_keys", `SELECT kid, private_enc FROM smart_keys`},
			{"sealed_secrets", `SELECT name, sealed FROM sealed_secrets`},
		} {
			rs, err := tx.Query(ctx, q.sql)
			if err != nil {
				return err
			}
			for rs.Next() {
				r := row{table: q.table}
				if err := rs.Scan(&r.id, &r.sealed); err != nil {
					rs.Close()
					return err
				}
				rows = append(rows, r)
			}
			rs.Close()
			if err := rs.Err(); err != nil {
				return err
			}
		}
		for _, r := range rows {
			if id, err := crypto.SealedKeyID(r.sealed); err == nil && id == kr.Current() {
				rep.Current++
				continue
			}
			var resealed []byte
			switch r.table {
			case "smart_keys":
				plain, err := s.open(r.sealed, r.id)
				if err != nil {
					return fmt.Errorf("signing key %s: %w", r.id, err)
				}
				resealed = s.seal(plain, r.id)
				clear(plain)
				if _, err := tx.Exec(ctx, `UPDATE smart_keys SET private_enc = $2 WHERE kid = $1`, r.id, resealed); err != nil {
					return err
				}
				rep.SigningKeys++
			default:
				plain, err := kr.Open(r.sealed, []byte("secret:"+r.id))
				if err != nil {
					return fmt.Errorf("secret %s: %w", r.id, err)
				}
				resealed, _ = kr.Seal(plain, []byte("secret:"+r.id))
				clear(plain)
				if _, err := tx.Exec(ctx, `UPDATE sealed_secrets SET sealed = $2 WHERE name = $1`, r.id, resealed); err != nil {
					return err
				}
				rep.Secrets++
			}
		}
		return nil
	})
	return rep, err
}

// signingKey is one of Billy's token signing keys.
type signingKey struct {
	kid     string
	private *rsa.PrivateKey
	created time.Time
	retired *time.Time
}

// keyring holds the signing keys: the newest signs, all unexpired verify.
type keyring struct {
	pool   *pgxpool.Pool
	sealer *sealer
	now    func() time.Time

	mu      sync.RWMutex
	keys    []*signingKey
	loaded  time.Time
	current *signingKey
}

// newKeyring is newRing over a keyring of the one master key.
func newKeyring(pool *pgxpool.Pool, master []byte, now func() time.Time) (*keyring, error) {
	kr, err := crypto.KeyringFromKey(master)
	if err != nil {
		return nil, err
	}
	return newRing(pool, kr, now), nil
}

func newRing(pool *pgxpool.Pool, kr *crypto.Keyring, now func() time.Time) *keyring {
	return &keyring{pool: pool, sealer: newSealer(kr), now: now}
}

// ErrMasterKeyMismatch is returned when signing keys are stored but the master key opens none of
// them: the process was given another master key than the server's. Making a new key then would
// retire the server's own and break every token it issued, so Billy stops instead.
var ErrMasterKeyMismatch = errors.New("the master key opens none of the stored signing keys")

// load reads the keys, and makes a new one when there is none fresh enough to sign. Concurrent
// processes serialise on an advisory lock, so only one makes the key. A key it cannot open (sealed
// with another master key) is never retired: load fails instead.
func (k *keyring) load(ctx context.Context) error {
	tx, err := k.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(727002)`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT kid, private_enc, created_at, retired_at FROM smart_keys
		WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at`, k.now().Add(-keyRetention))
	if err != nil {
		return err
	}
	var keys []*signingKey
	var sealedElsewhere []string // kids of keys this master key does not open
	for rows.Next() {
		var kid string
		var enc []byte
		var created time.Time
		var retired *time.Time
		if err := rows.Scan(&kid, &enc, &created, &retired); err != nil {
			rows.Close()
			return err
		}
		der, err := k.sealer.open(enc, kid)
		if err != nil {
			sealedElsewhere = append(sealedElsewhere, kid)
			continue
		}
		priv, err := x509.ParsePKCS1PrivateKey(der)
		if err != nil {
			rows.Close()
			return fmt.Errorf("signing key %s opens but is not an RSA private key: %w", kid, err)
		}
		keys = append(keys, &signingKey{kid: kid, private: priv, created: created, retired: retired})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(keys) == 0 && len(sealedElsewhere) > 0 {
		return fmt.Errorf("%w (%d stored; start with the master key the server runs with)", ErrMasterKeyMismatch, len(sealedElsewhere))
	}
	var current *signingKey
	for _, key := range keys {
		if key.retired == nil && k.now().Sub(key.created) < keyLifetime {
			current = key
		}
	}
	if current == nil && len(sealedElsewhere) > 0 {
		return fmt.Errorf("the signing keys are due for rotation, but the master key does not open %s, which may still sign tokens "+
			"elsewhere: refusing to retire it (start with the master key that sealed it)", strings.Join(sealedElsewhere, ", "))
	}
	if current == nil {
		if current, err = k.create(ctx, tx); err != nil {
			return err
		}
		keys = append(keys, current)
		if _, err := tx.Exec(ctx, `UPDATE smart_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid <> $2`, k.now(), current.kid); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	k.mu.Lock()
	k.keys, k.current, k.loaded = keys, current, k.now()
	k.mu.Unlock()
	return nil
}

func (k *keyring) create(ctx context.Context, tx pgx.Tx) (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	kid := randomToken(12)
	pub := jose.JSONWebKey{Key: &priv.PublicKey, KeyID: kid, Algorithm: signingAlg, Use: "sig"}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return nil, err
	}
	sealed := k.sealer.seal(x509.MarshalPKCS1PrivateKey(priv), kid)
	if _, err := tx.Exec(ctx, `INSERT INTO smart_keys (kid, alg, private_enc, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)`,
		kid, signingAlg, sealed, pubJSON, k.now()); err != nil {
		return nil, fmt.Errorf("store signing key: %w", err)
	}
	return &signingKey{kid: kid, private: priv, created: k.now()}, nil
}

// refresh reloads the keys when they are older than a minute (another process may have rotated).
func (k *keyring) refresh(ctx context.Context) error {
	k.mu.RLock()
	stale := k.now().Sub(k.loaded) > time.Minute
	k.mu.RUnlock()
	if !stale {
		return nil
	}
	return k.load(ctx)
}

// signer returns the current signing key.
func (k *keyring) signer(ctx context.Context) (*signingKey, error) {
	if err := k.refresh(ctx); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.current == nil {
		return nil, errors.New("no signing key")
	}
	return k.current, nil
}

// public returns the JWKS of the keys that may have signed a live token.
func (k *keyring) public(ctx context.Context) (jose.JSONWebKeySet, error) {
	if err := k.refresh(ctx); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	var set jose.JSONWebKeySet
	for _, key := range k.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &key.private.PublicKey, KeyID: key.kid, Algorithm: signingAlg, Use: "sig"})
	}
	return set, nil
}

// verifyKey finds the public key for kid.
func (k *keyring) verifyKey(ctx context.Context, kid string) (*rsa.PublicKey, bool) {
	for attempt := 0; attempt < 2; attempt++ {
		k.mu.RLock()
		for _, key := range k.keys {
			if key.kid == kid {
				k.mu.RUnlock()
				return &key.private.PublicKey, true
			}
		}
		k.mu.RUnlock()
		// A key made by another process after we loaded: reload once, at most every ten seconds,
		// so tokens naming made-up key ids cannot make every request hit the database.
		k.mu.RLock()
		recent := k.now().Sub(k.loaded) < 10*time.Second
		k.mu.RUnlock()
		if attempt > 0 || recent || k.load(ctx) != nil {
			break
		}
	}
	return nil, false
}
