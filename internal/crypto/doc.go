// Package crypto owns Billy's encryption at rest: envelope encryption with AES-256-GCM in a streaming,
// seekable format, and the keyring of master keys that wrap the per-blob data keys.
//
// It encrypts and decrypts byte streams and nothing else: it does not know where blobs live (see
// internal/blob), never logs, and never reads the environment itself; the caller hands it the value of
// BILLY_MASTER_KEY (or BILLY_MASTER_KEY_FILE's content) through ParseKeyring.
//
// # Keys
//
// A master key is 32 random bytes, written in standard base64 (`head -c32 /dev/urandom | base64`). The
// keyring value is either one key, whose id is the first 8 hex digits of the SHA-256 of the key, or a
// comma-separated list of `id:base64key` entries (ids are 1–32 characters of [A-Za-z0-9._-]) whose first
// entry is the current key, used for new blobs; the others only read old blobs:
//
//	BILLY_MASTER_KEY=q1yW3...=                       one key, id derived from it
//	BILLY_MASTER_KEY=k2:Zm9v...=,k1:q1yW3...=        rotation: write with k2, still read k1
//
// To rotate, put the new key first and keep the old ones until every blob has been rewrapped (Rewrap
// re-encrypts only the 114-byte header, never the data). A list entry without `id:` gets the derived id,
// so a single key can later be listed as `<derived-id>:<key>` or plain `<key>` after the new one.
// Keyring.Replace swaps a running keyring's keys in place (a process following BILLY_MASTER_KEY_FILE),
// and Seal/Open seal small values (signing keys, token secrets) under the same keys, in a format that
// names its key like the blob header does (see seal.go), so they rotate the same way.
//
// # Format
//
// Each blob gets a fresh random 256-bit data key. The data key is sealed with AES-256-GCM under the
// current master key; the plaintext is cut into segments of SegmentSize bytes (the last may be shorter,
// even empty) and each segment is sealed with AES-256-GCM under the data key, following the STREAM
// construction of Hoang, Reyhanitabar, Rogaway and Vizár ("Online authenticated-encryption and its
// nonce-reuse misuse-resistance", 2015): the nonce is a per-blob random prefix followed by the segment
// counter, and the additional data says whether the segment is the last. Reordered, dropped, duplicated or
// truncated segments therefore fail authentication, and a reader can decrypt any segment on its own,
// which is what makes the format seekable. All integers are big-endian.
//
//	header (HeaderSize = 114 bytes)
//	  0   8  magic "BILLYENC"
//	  8   1  version = 1 (AES-256-GCM, STREAM segments)
//	  9   4  plaintext segment size S (uint32; 65536 when written by this package)
//	 13   1  master key id length n (1..32)
//	 14  32  master key id, n bytes then zero padding
//	 46   8  nonce prefix (random per blob)
//	 54  12  wrap nonce (random)
//	 66  48  data key (32 bytes) sealed by the master key, with its 16-byte tag;
//	         the additional data of that seal is header bytes 0..53, so any change to
//	         the header makes the data key fail to unwrap
//	segments, i = 0, 1, ..., k-1 with k = max(1, ceil(plaintext/S))
//	  S+16 bytes each (the last: its plaintext length + 16): AES-256-GCM under the data key,
//	  nonce = nonce prefix || uint32(i), additional data = one byte, 1 for the last segment else 0
//
// The ciphertext length alone fixes the number of segments and the plaintext size; NewReader
// authenticates the last segment before it reports Size, so a truncated blob is an error at open, not a
// short read later.
//
// Written by hand on top of crypto/aes and crypto/cipher: Tink's streaming AEAD brings its own keyset
// format and key management, and age's STREAM code is internal to its module; the construction here is
// the published one, and this package is only the framing around crypto/cipher.
package crypto
