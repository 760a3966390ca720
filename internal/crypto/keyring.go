package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
)

// KeySize is the length in bytes of master keys and data keys (AES-256).
const KeySize = 32

// maxKeyIDLen bounds key ids so the header has a fixed size.
const maxKeyIDLen = 32

// ErrKeyring is wrapped by every error ParseKeyring returns.
var ErrKeyring = errors.New("master key")

// Keyring holds the master keys that wrap data keys: one current key for new blobs and older keys that
// only unwrap existing blobs. It is safe for concurrent use, and Replace swaps its keys in place, so a
// running process picks up a rotated BILLY_MASTER_KEY_FILE without restarting. Its String and LogValue
// never show key bytes.
type Keyring struct {
	st atomic.Pointer[ringState]
}

// ringState is one immutable set of keys.
type ringState struct {
	current string
	ids     []string // current first, then the order given
	aeads   map[string]cipher.AEAD
	keys    map[string][]byte
}

func (k *Keyring) state() *ringState { return k.st.Load() }

// ParseKeyring parses a BILLY_MASTER_KEY value: one base64 key, or a comma-separated list of
// `id:base64key` entries whose first entry is the current key (see the package doc). Surrounding spaces
// are ignored. Errors say which entry is wrong and never contain key material.
func ParseKeyring(s string) (*Keyring, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty: set BILLY_MASTER_KEY to a base64 32-byte key (head -c32 /dev/urandom | base64)", ErrKeyring)
	}
	st := &ringState{aeads: make(map[string]cipher.AEAD), keys: make(map[string][]byte)}
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
		if err := st.add(id, key); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrKeyring, n+1, err)
		}
	}
	kr := &Keyring{}
	kr.st.Store(st)
	return kr, nil
}

// KeyringFromKey makes a keyring of one raw key of any length (hashed to KeySize bytes when it is not
// KeySize long), under the id KeyID gives. It serves callers that hold a key as bytes, not as a
// BILLY_MASTER_KEY value.
func KeyringFromKey(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	st := &ringState{aeads: make(map[string]cipher.AEAD), keys: make(map[string][]byte)}
	if err := st.add(KeyID(key), key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyring, err)
	}
	kr := &Keyring{}
	kr.st.Store(st)
	return kr, nil
}

func (st *ringState) add(id string, key []byte) error {
	if _, dup := st.aeads[id]; dup {
		return fmt.Errorf("key id %q appears twice", id)
	}
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	st.aeads[id] = aead
	st.keys[id] = key
	st.ids = append(st.ids, id)
	st.current = st.ids[0]
	return nil
}

// Replace gives k the keys of other (which is left as it is). Blobs being written keep the key they
// started with; everything after sees the new set.
func (k *Keyring) Replace(other *Keyring) { k.st.Store(other.state()) }

// HMACs returns HMAC-SHA256(key, label) under each master key, current first. It exists for values
// that were derived from the master key before the keyring could seal (the SMART signing-key seal and
// token secrets of earlier versions), so that they can still be opened and then sealed properly.
func (k *Keyring) HMACs(label string) [][]byte {
	st := k.state()
	out := make([][]byte, 0, len(st.ids))
	for _, id := range st.ids {
		m := hmac.New(sha256.New, st.keys[id])
		m.Write([]byte(label))
		out = append(out, m.Sum(nil))
	}
	return out
}

// KeyID is the id a key gets when the keyring names none: the first 8 hex digits of its SHA-256.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Current is the id of the key that wraps new data keys.
func (k *Keyring) Current() string { return k.state().current }

// IDs lists the key ids, current first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.state().ids...) }

// String describes the keyring by its key ids only.
func (k *Keyring) String() string {
	st := k.state()
	return fmt.Sprintf("Keyring(current=%s, keys=%s)", st.current, strings.Join(st.ids, ","))
}

// GoString is String, so that %#v cannot print key material either.
func (k *Keyring) GoString() string { return k.String() }

// LogValue logs key ids, never keys.
func (k *Keyring) LogValue() slog.Value {
	st := k.state()
	return slog.GroupValue(slog.String("current", st.current), slog.Any("ids", st.ids))
}

func (k *Keyring) aead(id string) (cipher.AEAD, error) {
	st := k.state()
	a, ok := st.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: blob is wrapped by master key %q, which the keyring (%s) does not hold", ErrUnknownKey, id, strings.Join(st.ids, ","))
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
