package depot

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/smartbox-oss/smartbox/box"
	"github.com/smartbox-oss/smartbox/sync/bridge"
	"github.com/smartbox-oss/smartbox/sync/link"
	"github.com/smartbox-oss/smartbox/sync/wire"
)

// ForgedCode is the code a forged grant batch would give the attacker: it
// must never open anything.
const ForgedCode = "271828"

// ForgedGrantID is the forged batch's grant.
const ForgedGrantID = "forged-grant"

// forgeTimeout bounds the attacker's connect and publish; forgeQuiesce is
// paho's wait for in-flight work at disconnect, in milliseconds.
const (
	forgeTimeout = 10 * time.Second
	forgeQuiesce = 100
)

// ForgeGrant plays an attacker who has the broker (the cloud's broker
// password, or the broker itself) but not the bridge's signing key: it
// publishes on the box's records topic a batch, well formed, sealed to the
// box and claiming the bridge's key id, that grants ForgedCode every key,
// signed with a key of its own. The box must refuse it (sync_refused, a
// security event) and keep every real code working.
func (d *Depot) ForgeGrant(ctx context.Context, id string) error {
	b, err := d.live(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	var rev uint64
	if b.state != nil {
		rev = b.state.Status.Revision
	}
	b.mu.Unlock()

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	forger := wire.Signer{KeyID: d.kid, Key: priv}
	sealer, err := wire.NewCodeSealer(b.syncKey, b.id, rev+1)
	if err != nil {
		return err
	}
	var keys []string
	for _, k := range b.keys {
		keys = append(keys, k.ID)
	}
	batch := wire.RecordBatch{V: wire.Version, Box: b.id, From: rev, To: rev + 1,
		Grants: []wire.GrantRecord{{
			Grant:      box.Grant{ID: ForgedGrantID, Kind: box.KindBooking, KeyIDs: keys, Source: "attacker"},
			CodeSealed: sealer.Seal(ForgedGrantID, ForgedCode),
		}},
		Ephemeral: sealer.Ephemeral(), IssuedAt: time.Now().UTC()}
	msg, err := forger.Sign(wire.KindRecords, b.id, b.syncKey, batch)
	if err != nil {
		return err
	}

	opts := mqtt.NewClientOptions().AddBroker("tcp://" + d.bopts.Broker.Listen).
		SetClientID("attacker-" + randomSecret()[:8]).SetUsername(d.cloudUser()).SetPassword(d.cloudPW).
		SetAutoReconnect(false).SetConnectTimeout(forgeTimeout).
		SetStore(link.NewMemoryStore()) // paho's own store races on reconnect (paho#703)
	c := mqtt.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(forgeTimeout) || t.Error() != nil {
		return fmt.Errorf("forged grant: connecting to the broker: %v", t.Error())
	}
	defer c.Disconnect(forgeQuiesce)
	t := c.Publish(wire.Topic(b.id, wire.LeafRecords), 1, false, msg)
	if !t.WaitTimeout(forgeTimeout) || t.Error() != nil {
		return fmt.Errorf("forged grant: publishing: %v", t.Error())
	}
	d.log.Info("forged grant batch published", "box", b.id, "revision", rev+1)
	return nil
}

// cloudUser is the cloud's broker account name.
func (d *Depot) cloudUser() string {
	if d.bopts.Broker.Username != "" {
		return d.bopts.Broker.Username
	}
	return bridge.DefaultCloudUser
}
