package link

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smartbox-oss/smartbox/sync/wire"
)

// Probe bounds.
const (
	// DefaultProbeTimeout bounds a Probe whose ctx has no deadline. The
	// cloud answers a sync request within milliseconds when it is up; ten
	// seconds covers a loaded bridge and a slow uplink, and a technician
	// waiting for a verdict does not wait longer.
	DefaultProbeTimeout = 10 * time.Second
	// maxProbes bounds the probes waiting at once. Each sends a sync
	// request, which the cloud rate-limits per box (a burst of ten by
	// default): a few at once (selftest and doctor together) are fine,
	// a loop hammering the socket is refused rather than throttled into
	// timeouts.
	maxProbes = 8
	// probeNonceBytes of randomness make a nonce no earlier answer, and no
	// neighbour on the broker, can have guessed.
	probeNonceBytes = 16
)

// Probe errors, each wrapped with what and where.
var (
	// ErrNotConnected: the link is not running, or not connected to the
	// broker (see Connected): nothing was sent.
	ErrNotConnected = errors.New("not connected to the broker")
	// ErrProbeTimeout: the request went out and no answer carrying its
	// nonce came back in time.
	ErrProbeTimeout = errors.New("no answer from the cloud")
	// ErrProbeSignature: the answer came back but does not verify with the
	// keys the box was provisioned with.
	ErrProbeSignature = errors.New("the cloud's answer does not verify with this box's provisioned keys")
	// ErrProbeBusy: maxProbes probes are waiting already.
	ErrProbeBusy = errors.New("too many probes waiting")
)

// ProbeResult is a probe's verified answer.
type ProbeResult struct {
	// RTT is from the request handed to the link until its signed answer
	// verified.
	RTT time.Duration
	// KeyID is the id of the cloud key that signed the answer ("" is the
	// default key).
	KeyID string
}

// Probe asks the cloud for a signed answer carrying a fresh nonce and waits
// for it: a round trip through the broker and the cloud, and a check that
// what the cloud signs verifies with the keys this box was provisioned with
// (a box provisioned with another bridge's key applies nothing the bridge
// sends, and says so only as sync_refused events). The request is a real
// SyncRequest for the revision the box holds, so a box behind also gets its
// records. Probes may run concurrently, at most maxProbes at once.
//
// The errors say which: ErrNotConnected, ErrProbeTimeout (the cloud, or an
// older cloud that does not know probes, did not answer), ErrProbeSignature
// (naming the key id the cloud signed with and the ids and fingerprints of
// the keys the box holds), ErrProbeBusy; or ctx's error if ctx was
// cancelled.
func (l *Link) Probe(ctx context.Context) (ProbeResult, error) {
	if !l.running.Load() {
		return ProbeResult{}, fmt.Errorf("probe: %w %s: the link is not running (starting, or stopped)", ErrNotConnected, l.opts.BrokerURL)
	}
	if !l.Connected() {
		return ProbeResult{}, fmt.Errorf("probe: %w %s (the link keeps retrying; smartboxd's log says why)", ErrNotConnected, l.opts.BrokerURL)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultProbeTimeout)
		defer cancel()
	}
	var nb [probeNonceBytes]byte
	_, _ = rand.Read(nb[:]) // crypto/rand never fails on Linux >= 3.17
	nonce := hex.EncodeToString(nb[:])
	ch, err := l.probes.add(nonce)
	if err != nil {
		return ProbeResult{}, err
	}
	defer l.probes.remove(nonce)
	start := time.Now()
	select {
	case l.probeSend <- nonce: // never blocks: at most maxProbes waiters, each sends once
	case <-ctx.Done():
		return ProbeResult{}, l.probeDone(ctx, start)
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return ProbeResult{}, fmt.Errorf("probe: %w", a.err)
		}
		return ProbeResult{RTT: a.at.Sub(start), KeyID: a.keyID}, nil
	case <-ctx.Done():
		return ProbeResult{}, l.probeDone(ctx, start)
	}
}

// probeDone is the error of a probe whose ctx ended first.
func (l *Link) probeDone(ctx context.Context, start time.Time) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("probe: %w", ctx.Err())
	}
	return fmt.Errorf("probe: %w within %s: the sync request went to %s and no signed answer came back (the bridge down or not subscribed, throttling this box, or too old to answer probes)",
		ErrProbeTimeout, time.Since(start).Round(time.Millisecond), l.opts.BrokerURL)
}

// sendProbe runs on the worker: it publishes the probe's sync request.
func (l *Link) sendProbe(nonce string) {
	if !l.w.online {
		l.probes.answer(nonce, probeAnswer{err: fmt.Errorf("%w %s: the connection dropped", ErrNotConnected, l.opts.BrokerURL)})
		return
	}
	have, err := l.st.Revision()
	if err != nil {
		l.probes.answer(nonce, probeAnswer{err: fmt.Errorf("reading the revision: %w", err)})
		return
	}
	msg, err := json.Marshal(wire.SyncRequest{V: wire.Version, Box: l.opts.BoxID, Have: have, Reason: "probe", Probe: nonce})
	if err != nil {
		l.probes.answer(nonce, probeAnswer{err: err})
		return
	}
	l.log.Debug("sync: probe", "have", have)
	l.publish(wire.LeafSyncRequest, false, msg)
}

// probeVerified runs on the worker for a records message that verified and
// carries a probe nonce: it answers the probe waiting for it, if any.
func (l *Link) probeVerified(payload []byte, nonce string) {
	var env wire.Envelope
	_ = json.Unmarshal(payload, &env) // it verified: it parses
	l.probes.answer(nonce, probeAnswer{keyID: env.KeyID, at: time.Now()})
}

// probeRefused runs on the worker for a records message that did not
// verify. If its body names a waiting probe's nonce, that probe fails with
// the reason. The body is read unverified, and only to fail a probe, never
// to pass one: a forger can at worst make a probe report a forgery, which
// it is.
func (l *Link) probeRefused(payload []byte, verr error) {
	if !l.probes.waiting() {
		return
	}
	var env wire.Envelope
	if json.Unmarshal(payload, &env) != nil {
		return
	}
	var body struct {
		Probe string `json:"probe"`
	}
	if json.Unmarshal(env.Body, &body) != nil || body.Probe == "" {
		return
	}
	if errors.Is(verr, wire.ErrWrongAudience) {
		// The key is right; the cloud signs for another store of this box
		// id (it has another sync key registered for it).
		l.probes.answer(body.Probe, probeAnswer{err: fmt.Errorf("%w: the cloud signs for another identity of box %s (register this store's sync key with the bridge again: 'smartboxctl identity' prints it): %w",
			ErrProbeSignature, l.opts.BoxID, verr)})
		return
	}
	l.probes.answer(body.Probe, probeAnswer{err: fmt.Errorf("%w: the answer is signed with cloud key %q; this box holds %s (provision it with the bridge's current signing key): %w",
		ErrProbeSignature, env.KeyID, describeKeys(l.verifier.Keys), verr)})
}

// describeKeys names the keys a box holds: id and a fingerprint (the first
// 8 bytes of the SHA-256 of the public key, in hex), so that a key of the
// right id but from another bridge is told apart.
func describeKeys(keys map[string]ed25519.PublicKey) string {
	if len(keys) == 0 {
		return "no cloud key"
	}
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		sum := sha256.Sum256(keys[id])
		parts[i] = fmt.Sprintf("%q (sha256 %s…)", id, hex.EncodeToString(sum[:8]))
	}
	return "key " + strings.Join(parts, ", key ")
}

// probeAnswer is what a waiting probe is told.
type probeAnswer struct {
	keyID string
	at    time.Time // when it verified
	err   error
}

// probeWaiters are the probes waiting for their answer, by nonce.
type probeWaiters struct {
	mu sync.Mutex
	m  map[string]chan probeAnswer
}

func newProbeWaiters() *probeWaiters {
	return &probeWaiters{m: map[string]chan probeAnswer{}}
}

func (p *probeWaiters) add(nonce string) (<-chan probeAnswer, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) >= maxProbes {
		return nil, fmt.Errorf("probe: %w (%d): try again when they are done", ErrProbeBusy, maxProbes)
	}
	ch := make(chan probeAnswer, 1)
	p.m[nonce] = ch
	return ch, nil
}

func (p *probeWaiters) remove(nonce string) {
	p.mu.Lock()
	delete(p.m, nonce)
	p.mu.Unlock()
}

func (p *probeWaiters) waiting() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m) > 0
}

// answer tells the probe of nonce, if it still waits; the first answer
// counts (a duplicate delivery of the answer finds the channel full).
func (p *probeWaiters) answer(nonce string, a probeAnswer) {
	p.mu.Lock()
	ch := p.m[nonce]
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- a:
	default:
	}
}
