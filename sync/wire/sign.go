package wire

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
)

// Kinds of signed message.
const (
	KindRecords   = "records"
	KindEventsAck = "events_ack"
	KindCommand   = "command"
)

// Envelope is a signed message. Body is the exact bytes that were signed
// (a JSON object), so verification needs no canonical re-encoding.
type Envelope struct {
	V     int             `json:"v"`
	Kind  string          `json:"kind"`
	Box   string          `json:"box"`
	KeyID string          `json:"kid,omitempty"` // which cloud key signed, for rotation
	Body  json.RawMessage `json:"body"`
	Sig   []byte          `json:"sig"`
}

// signingInput binds the signature to the protocol, the kind and the box.
func signingInput(kind, boxID string, body []byte) []byte {
	in := make([]byte, 0, 32+len(kind)+len(boxID)+len(body))
	in = append(in, "smartbox/v1 signed message\n"...)
	in = append(in, kind...)
	in = append(in, '\n')
	in = append(in, boxID...)
	in = append(in, '\n')
	return append(in, body...)
}

// Signer signs messages with one of the cloud's Ed25519 keys.
type Signer struct {
	KeyID string
	Key   ed25519.PrivateKey
}

// Sign encodes body and wraps it in a signed envelope for boxID.
func (s Signer) Sign(kind, boxID string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding %s for %s: %w", kind, boxID, err)
	}
	env := Envelope{V: Version, Kind: kind, Box: boxID, KeyID: s.KeyID, Body: b,
		Sig: ed25519.Sign(s.Key, signingInput(kind, boxID, b))}
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
type Verifier struct {
	Keys map[string]ed25519.PublicKey // key id -> key; "" is the default key
}

// Open verifies data as a signed message of kind for boxID and decodes its
// body into out. Nothing is decoded from an envelope that does not verify.
func (v Verifier) Open(data []byte, kind, boxID string, out any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if env.V != Version {
		return fmt.Errorf("%w: v=%d, this side speaks v=%d", ErrVersion, env.V, Version)
	}
	if env.Kind != kind {
		return fmt.Errorf("%w: a %q message where %q was expected", ErrMalformed, env.Kind, kind)
	}
	if env.Box != boxID {
		return fmt.Errorf("%w: signed for box %q, this is %q", ErrWrongBox, env.Box, boxID)
	}
	pub, ok := v.Keys[env.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: unknown signing key %q", ErrBadSignature, env.KeyID)
	}
	if len(env.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signingInput(kind, boxID, env.Body), env.Sig) {
		return fmt.Errorf("%w: %s for %s", ErrBadSignature, kind, boxID)
	}
	// The body repeats version and box; they must agree with what was signed
	// around them.
	if err := Decode(env.Body, boxID, out); err != nil {
		return fmt.Errorf("signed %s: %w", kind, err)
	}
	return nil
}
