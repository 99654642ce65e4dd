package wire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of signed message.
const (
	KindRecords   = "records"
	KindEventsAck = "events_ack"
	KindCommand   = "command"
)

// EnvelopeVersion is the format of a signed Envelope, apart from Version,
// which every plain message (status, events, sync request, command result)
// and every signed body carries. Version 2 binds the signature to the box's
// store identity (Aud, see Audience): a v1 envelope named only the box id,
// so an ack captured from a box's old SD card verified on the re-flashed
// card of the same id and deleted events the cloud never stored. The
// version is bumped, not the field silently added, because a v1 verifier
// cannot check a v2 signature: each side says ErrVersion about the other
// instead of a misleading ErrBadSignature. Plain messages stay at Version
// 1, so a box not yet updated still sends its status and events, which the
// cloud stores; it cannot apply what the cloud signs until it is updated.
const EnvelopeVersion = 2

// ErrWrongAudience says a signed message was made for another store of
// the same box id: an old SD card's key, or a new card whose key was not
// registered with the cloud (register-box) yet.
var ErrWrongAudience = errors.New("signed for another identity of this box")

// Audience is how an envelope names the store it is for: the SHA-256 of
// the box's X25519 sync public key (store.SyncPublicKey on the box, the key
// given to cloud.RegisterBox on the cloud), in hex. A store makes its key
// when it is created, so a re-flashed card has a new audience.
func Audience(boxKey []byte) string {
	h := sha256.New()
	h.Write([]byte("smartbox box sync key\n"))
	h.Write(boxKey)
	return hex.EncodeToString(h.Sum(nil))
}

// Envelope is a signed message. Body is the exact bytes that were signed
// (a JSON object), so verification needs no canonical re-encoding.
type Envelope struct {
	V     int             `json:"v"`
	Kind  string          `json:"kind"`
	Box   string          `json:"box"`
	Aud   string          `json:"aud"`           // Audience of the box key it was signed for
	KeyID string          `json:"kid,omitempty"` // which cloud key signed, for rotation
	Body  json.RawMessage `json:"body"`
	Sig   []byte          `json:"sig"`
}

// signingInput binds the signature to the protocol, the kind, the box and
// the box's store identity (aud).
func signingInput(kind, boxID, aud string, body []byte) []byte {
	in := make([]byte, 0, 40+len(kind)+len(boxID)+len(aud)+len(body))
	in = append(in, "smartbox/v1 signed message v2\n"...)
	in = append(in, kind...)
	in = append(in, '\n')
	in = append(in, boxID...)
	in = append(in, '\n')
	in = append(in, aud...)
	in = append(in, '\n')
	return append(in, body...)
}

// Signer signs messages with one of the cloud's Ed25519 keys.
type Signer struct {
	KeyID string
	Key   ed25519.PrivateKey
}

// Sign encodes body and wraps it in a signed envelope for boxID's store
// whose X25519 sync public key is boxKey (the key the box registered).
func (s Signer) Sign(kind, boxID string, boxKey []byte, body any) ([]byte, error) {
	if len(boxKey) == 0 {
		return nil, fmt.Errorf("signing %s for %s: no box key to address it to", kind, boxID)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding %s for %s: %w", kind, boxID, err)
	}
	aud := Audience(boxKey)
	env := Envelope{V: EnvelopeVersion, Kind: kind, Box: boxID, Aud: aud, KeyID: s.KeyID, Body: b,
		Sig: ed25519.Sign(s.Key, signingInput(kind, boxID, aud, b))}
	out, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encoding %s envelope: %w", kind, err)
	}
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %s for %s is %d bytes", ErrTooLarge, kind, boxID, len(out))
	}
	return out, nil
}

// Verifier checks envelopes against the cloud's public keys, by key id. A
// box gets its keys at provisioning; more than one lets the cloud rotate.
// BoxKey is the box's own X25519 sync public key: only envelopes signed
// for it verify.
type Verifier struct {
	Keys   map[string]ed25519.PublicKey // key id -> key; "" is the default key
	BoxKey []byte
}

// Open verifies data as a signed message of kind for boxID and decodes its
// body into out. Nothing is decoded from an envelope that does not verify.
func (v Verifier) Open(data []byte, kind, boxID string, out any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if len(v.BoxKey) == 0 {
		return fmt.Errorf("%w: the verifier has no box key", ErrBadSignature)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if env.V != EnvelopeVersion {
		return fmt.Errorf("%w: signed envelope v=%d, this side speaks v=%d", ErrVersion, env.V, EnvelopeVersion)
	}
	if env.Kind != kind {
		return fmt.Errorf("%w: a %q message where %q was expected", ErrMalformed, env.Kind, kind)
	}
	if env.Box != boxID {
		return fmt.Errorf("%w: signed for box %q, this is %q", ErrWrongBox, env.Box, boxID)
	}
	aud := Audience(v.BoxKey)
	if env.Aud != aud {
		// Said apart from a bad signature for the log and the event; the
		// check that counts is the signature over our own audience below.
		return fmt.Errorf("%w %q: audience %.16s…, this store is %.16s… (a message for an old SD card, or the box's key was not registered again)",
			ErrWrongAudience, boxID, env.Aud, aud)
	}
	pub, ok := v.Keys[env.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: unknown signing key %q", ErrBadSignature, env.KeyID)
	}
	if len(env.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signingInput(kind, boxID, aud, env.Body), env.Sig) {
		return fmt.Errorf("%w: %s for %s", ErrBadSignature, kind, boxID)
	}
	// The body repeats version and box; they must agree with what was signed
	// around them.
	if err := Decode(env.Body, boxID, out); err != nil {
		return fmt.Errorf("signed %s: %w", kind, err)
	}
	return nil
}
