package crypto_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/iambilly/billy/internal/crypto"
)

// TestSeal: a sealed value opens with any keyring holding its key and the same context, names its
// key without opening, and refuses another context, a flipped byte or a keyring without the key.
func TestSeal(t *testing.T) {
	t.Parallel()
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	one, _ := crypto.ParseKeyring("one:" + k1)
	both, _ := crypto.ParseKeyring("two:" + k2 + ",one:" + k1)
	two, _ := crypto.ParseKeyring("two:" + k2)
	sealed, err := one.Seal([]byte("secret"), []byte("ctx"))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := crypto.SealedKeyID(sealed); id != "one" || err != nil {
		t.Errorf("SealedKeyID: %q %v", id, err)
	}
	if got, err := both.Open(sealed, []byte("ctx")); err != nil || string(got) != "secret" {
		t.Errorf("open with both keys: %q %v", got, err)
	}
	if _, err := both.Open(sealed, []byte("other")); !errors.Is(err, crypto.ErrWrongKey) {
		t.Errorf("another context: %v", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := one.Open(flipped, []byte("ctx")); !errors.Is(err, crypto.ErrWrongKey) {
		t.Errorf("a flipped byte: %v", err)
	}
	if _, err := two.Open(sealed, []byte("ctx")); !errors.Is(err, crypto.ErrUnknownKey) {
		t.Errorf("without its key: %v", err)
	}
	if _, err := crypto.SealedKeyID([]byte("nonsense")); !errors.Is(err, crypto.ErrNotSealed) {
		t.Errorf("not sealed: %v", err)
	}
	resealed, _ := both.Seal([]byte("secret"), []byte("ctx"))
	if id, _ := crypto.SealedKeyID(resealed); id != "two" {
		t.Errorf("a keyring seals under its current key, got %q", id)
	}
}
