package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the length in bytes of master keys and data keys (AES-256).
const KeySize = 32

// maxKeyIDLen bounds key ids so the header has a fixed size.
const maxKeyIDLen = 32

// ErrKeyring is wrapped by every error ParseKeyring returns.
var ErrKeyring = errors.New("master key")

// Keyring holds the master keys that wrap data keys: one current key for new blobs and older keys that
// only unwrap existing blobs. It is safe for concurrent use. Its String and LogValue never show key bytes.
type Keyring struct {
	current string
	ids     []string // current first, then the order given
	aeads   map[string]cipher.AEAD
}

// ParseKeyring parses a BILLY_MASTER_KEY value: one base64 key, or a comma-separated list of
// `id:base64key` entries whose first entry is the current key (see the package doc). Surrounding spaces
// are ignored. Errors say which entry is wrong and never contain key material.
func ParseKeyring(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty: set BILLY_MASTER_KEY to a base64 32-byte key (head -c32 /dev/urandom | base64)", ErrKeyring)
	}
	kr := &Keyring{aeads: make(map[string]cipher.AEAD)}
	for n, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("%w: entry %d is empty", ErrKeyring, n+1)
		}
		id, enc, hasID := strings.Cut(entry, ":")
		if !hasID {
			enc, id = id, ""
		}
		key, err := decodeKey(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrKeyring, n+1, err)
		}
		if hasID {
			id = strings.TrimSpace(id)
			if err := checkKeyID(id); err != nil {
				return nil, fmt.Errorf("%w: entry %d: %w", ErrKeyring, n+1, err)
			}
		} else {
			id = KeyID(key)
		}
		if _, dup := kr.aeads[id]; dup {
			return nil, fmt.Errorf("%w: entry %d: key id %q appears twice", ErrKeyring, n+1, id)
		}
		aead, err := newGCM(key)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrKeyring, n+1, err)
		}
		kr.aeads[id] = aead
		kr.ids = append(kr.ids, id)
	}
	kr.current = kr.ids[0]
	return kr, nil
}

// KeyID is the id a key gets when the keyring names none: the first 8 hex digits of its SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Current is the id of the key that wraps new data keys.
func (k *Keyring) Current() string { return k.current }

// IDs lists the key ids, current first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// String describes the keyring by its key ids only.
func (k *Keyring) String() string {
	return fmt.Sprintf("Keyring(current=%s, keys=%s)", k.current, strings.Join(k.ids, ","))
}

// GoString is String, so that %#v cannot print key material either.
func (k *Keyring) GoString() string { return k.String() }

// LogValue logs key ids, never keys.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", k.current), slog.Any("ids", k.ids))
}

func (k *Keyring) aead(id string) (cipher.AEAD, error) {
	a, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: blob is wrapped by master key %q, which the keyring (%s) does not hold", ErrUnknownKey, id, strings.Join(k.ids, ","))
	}
	return a, nil
}

func decodeKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("no key after the id")
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(key), KeySize)
	}
	return key, nil
}

func checkKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("key id %q: want 1 to %d characters", id, maxKeyIDLen)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("key id %q: want only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}
