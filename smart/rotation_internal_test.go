package smart

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/iambilly/billy/internal/crypto"
	"github.com/iambilly/billy/internal/pg/pgtest"
)

// legacySeal is how earlier versions sealed signing keys: AES-256-GCM under derive(master,
// "key-seal"), nonce first.
func legacySeal(t *testing.T, master, plain []byte, aad string) []byte {
	t.Helper()
	block, err := aes.NewCipher(derive(master, "key-seal"))
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, []byte(aad))
}

// TestUpgradeKeepsLegacyKeysAndSecrets: a database written by an earlier version (signing key
// sealed under a derived key, token secrets derived from the master key) opens with the keyring,
// keeps the derived fosite secret (so its refresh tokens stay valid), and after Reseal under a
// new key opens with the new key alone.
func TestUpgradeKeepsLegacyKeysAndSecrets(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	now := func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }
	master := []byte("0123456789abcdef0123456789abcdef")
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(t.Context(), `INSERT INTO smart_keys (kid, alg, private_enc, public_jwk, created_at) VALUES ('old', 'RS256', $1, '{}', $2)`,
		legacySeal(t, master, x509.MarshalPKCS1PrivateKey(priv), "old"), now()); err != nil {
		t.Fatal(err)
	}
	open := func(kr *crypto.Keyring) (fosite, ticket []byte) {
		t.Helper()
		k := newRing(pool, kr, now)
		if err := k.load(t.Context()); err != nil {
			t.Fatalf("load with %s: %v", kr, err)
		}
		if len(k.keys) != 1 || k.keys[0].kid != "old" || !k.keys[0].private.Equal(priv) {
			t.Fatalf("keys with %s: %+v", kr, k.keys)
		}
		f, tk, err := k.secrets(t.Context())
		if err != nil {
			t.Fatalf("secrets with %s: %v", kr, err)
		}
		return f, tk
	}
	oldRing, _ := crypto.KeyringFromKey(master)
	f, tk := open(oldRing)
	if !bytes.Equal(f, derive(master, "fosite")) || !bytes.Equal(tk, derive(master, "login-ticket")) {
		t.Fatal("an upgraded installation must keep the secrets its tokens were made with")
	}
	newKey := base64.StdEncoding.EncodeToString([]byte("another master key, 32 bytes...."))
	both, err := crypto.ParseKeyring("new:" + newKey + "," + base64.StdEncoding.EncodeToString(master)) // the old key under its derived id
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := Reseal(t.Context(), pool, both); err != nil || rep.SigningKeys != 1 || rep.Secrets != 2 {
		t.Fatalf("reseal: %+v %v", rep, err)
	}
	onlyNew, _ := crypto.ParseKeyring("new:" + newKey)
	f2, tk2 := open(onlyNew)
	if !bytes.Equal(f2, f) || !bytes.Equal(tk2, tk) {
		t.Error("the secrets changed with the master key")
	}
	if _, _, err := newRing(pool, oldRing, now).secrets(t.Context()); err == nil {
		t.Error("the old key alone still opens the secrets after rotation")
	}
}
