package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
)

// Small values (a signing key's private part, a token secret) are sealed whole rather than streamed:
//
//	0   6  magic "BSEAL1"
//	6   1  master key id length n (1..32)
//	7   n  master key id
//	7+n 12 nonce (random)
//	    ..  AES-256-GCM ciphertext and tag under the master key; the additional data is the bytes
//	        before the nonce followed by the caller's context (what the value is: a key id, a name),
//	        so a sealed value cannot be moved to another row or relabelled.
var sealMagic = []byte("BSEAL1")

// ErrNotSealed: the bytes are not a value Seal made (an older format, or garbage).
var ErrNotSealed = errors.New("not a sealed value")

// Seal encrypts plain under the current master key, bound to context.
func (k *Keyring) Seal(plain, context []byte) ([]byte, error) {
	st := k.state()
	aead := st.aeads[st.current]
	out := make([]byte, 0, len(sealMagic)+1+len(st.current)+12+len(plain)+tagSize)
	out = append(out, sealMagic...)
	out = append(out, byte(len(st.current)))
	out = append(out, st.current...)
	head := len(out)
	out = append(out, make([]byte, 12)...)
	rand.Read(out[head:])
	aad := append(append([]byte(nil), out[:head]...), context...)
	return aead.Seal(out, out[head:head+12], plain, aad), nil
}

// SealedKeyID names the master key that sealed a value, without opening it.
func SealedKeyID(sealed []byte) (string, error) {
	if !bytes.HasPrefix(sealed, sealMagic) || len(sealed) < len(sealMagic)+1 {
		return "", ErrNotSealed
	}
	n := int(sealed[len(sealMagic)])
	if n == 0 || n > maxKeyIDLen || len(sealed) < len(sealMagic)+1+n+12+tagSize {
		return "", fmt.Errorf("%w: truncated or bad key id length", ErrNotSealed)
	}
	return string(sealed[len(sealMagic)+1 : len(sealMagic)+1+n]), nil
}

// Open decrypts a value Seal made with any key of the keyring and the same context.
func (k *Keyring) Open(sealed, context []byte) ([]byte, error) {
	id, err := SealedKeyID(sealed)
	if err != nil {
		return nil, err
	}
	aead, err := k.aead(id)
	if err != nil {
		return nil, err
	}
	head := len(sealMagic) + 1 + len(id)
	aad := append(append([]byte(nil), sealed[:head]...), context...)
	plain, err := aead.Open(nil, sealed[head:head+12], sealed[head+12:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w (master key %q)", ErrWrongKey, id)
	}
	return plain, nil
}
