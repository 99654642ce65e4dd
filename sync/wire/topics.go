package wire

import (
	"fmt"
	"strings"

	"github.com/smartbox-oss/smartbox/box"
)

// Root is the top of the topic tree. The "v1" is the protocol's major
// version: a breaking change gets a new tree, so old and new boxes can share
// a broker during a migration.
const Root = "smartbox/v1"

// Leaves under Root/<box-id>/. The arrow says who publishes.
const (
	LeafStatus        = "status"         // box -> cloud, retained; also the box's last will
	LeafSyncRequest   = "sync/request"   // box -> cloud: "I have revision N"
	LeafRecords       = "records"        // cloud -> box: signed record batches
	LeafEvents        = "events"         // box -> cloud: outbox events in order
	LeafEventsAck     = "events/ack"     // cloud -> box: signed, "stored through seq N"
	LeafCommand       = "command"        // cloud -> box: signed remote commands
	LeafCommandResult = "command/result" // box -> cloud
)

var leaves = map[string]bool{
	LeafStatus: true, LeafSyncRequest: true, LeafRecords: true, LeafEvents: true,
	LeafEventsAck: true, LeafCommand: true, LeafCommandResult: true,
}

// Topic returns Root/<boxID>/<leaf>.
func Topic(boxID, leaf string) string { return Root + "/" + boxID + "/" + leaf }

// BoxFilter matches every topic of one box. No user may subscribe with it:
// the brokers' ACLs give a box its read leaves by name and the cloud the box
// leaves (sync/README.md); tests use it to show that.
func BoxFilter(boxID string) string { return Root + "/" + boxID + "/#" }

// CloudFilter matches one leaf of every box, for the cloud's subscriptions.
func CloudFilter(leaf string) string { return Root + "/+/" + leaf }

// ParseTopic splits a topic of the tree into its box id and leaf.
func ParseTopic(topic string) (boxID, leaf string, err error) {
	rest, ok := strings.CutPrefix(topic, Root+"/")
	if !ok {
		return "", "", fmt.Errorf("%w: topic %q is not under %s", ErrMalformed, topic, Root)
	}
	boxID, leaf, ok = strings.Cut(rest, "/")
	if !ok || !box.ValidID(boxID) || !leaves[leaf] {
		return "", "", fmt.Errorf("%w: topic %q is not <box-id>/<known leaf> under %s", ErrMalformed, topic, Root)
	}
	return boxID, leaf, nil
}
