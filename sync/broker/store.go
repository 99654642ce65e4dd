package broker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// boltStore is mochi's bolt storage hook with one repair. Its OnQosPublish
// (v2.7.9) stores an in-flight message without its packet id (the badger and
// pebble hooks keep it). After a restart every queued message would come back
// with id 0: mochi then fails to resend them ("protocol violation: missing
// packet id") and drops the connection, on every reconnect, so a box with
// messages queued across a broker restart could never stay connected. The id
// is also in the record's key ("IFM_<client>:<id>"), and this wrapper takes it
// from there when the messages are loaded.
type boltStore struct {
	*bolt.Hook
	queues *queueBound // counts the in-flight messages loaded
}

// StoredRetainedMessages returns the stored retained messages that the
// access policy would let a client retain today, a box's status of at most
// maxStatusSize, and deletes the others from the store. A store written
// before that policy (when a box could retain anything in its tree) would
// otherwise bring them back on every start, for up to the message expiry.
// bbolt reuses the pages freed, but does not shrink its file.
func (h boltStore) StoredRetainedMessages() ([]storage.Message, error) {
	v, err := h.Hook.StoredRetainedMessages()
	if err != nil {
		return nil, err
	}
	out := v[:0]
	for _, m := range v {
		id, _, _ := splitTopic(m.TopicName)
		if !retainAllowed(id, m.TopicName) || len(m.Payload) > maxStatusSize {
			h.Log.Warn("deleting stored retained message the access policy no longer allows",
				"security", true, "topic", m.TopicName, "bytes", len(m.Payload), "client", m.Client)
			h.Hook.OnRetainedExpired(m.TopicName)
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// StoredInflightMessages returns the stored in-flight messages with their
// packet ids restored; a record whose key has no id is left out (sending it
// would break the client's connection). The messages returned count
// against their session's queue bounds: mochi loads them without calling
// OnQosPublish, and a broker restarted often would otherwise hold one more
// full queue per restart.
func (h boltStore) StoredInflightMessages() ([]storage.Message, error) {
	v, err := h.Hook.StoredInflightMessages()
	if err != nil {
		return nil, err
	}
	out := v[:0]
	for _, m := range v {
		if m.PacketID == 0 {
			id, ok := packetIDFromKey(m.ID)
			if !ok {
				h.Log.Warn("dropping stored in-flight message without a packet id", "key", m.ID, "client", m.Client)
				continue
			}
			m.PacketID = id
		}
		out = append(out, m)
		if m.FixedHeader.Type == packets.Publish {
			source, _, _ := splitTopic(m.TopicName)
			h.queues.addMsg(m.Client, "", m.PacketID, source, len(m.Payload)+len(m.TopicName))
		}
	}
	return out, nil
}

// packetIDFromKey parses the id at the end of "IFM_<client>:<id>". Client ids
// may contain ':', the id never does: take the last one.
func packetIDFromKey(key string) (uint16, bool) {
	i := strings.LastIndexByte(key, ':')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(key[i+1:], 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

// SetOpts gives the hook a logger that leaves out one false alarm: on a
// first start (a fresh data directory) mochi asks the store for its saved
// system info, the hook logs the missing key as an error ("failed to get
// data ... key not found"), and then treats it as the normal case it is.
func (h boltStore) SetOpts(l *slog.Logger, opts *mqtt.HookOptions) {
	h.Hook.SetOpts(slog.New(notFoundFilter{l.Handler()}), opts)
}

// notFoundFilter drops the bolt hook's records whose error is its
// ErrKeyNotFound; every other record passes.
type notFoundFilter struct{ slog.Handler }

func (f notFoundFilter) Handle(ctx context.Context, r slog.Record) error {
	missing := false
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok && errors.Is(err, bolt.ErrKeyNotFound) {
			missing = true
			return false
		}
		return true
	})
	if missing {
		return nil
	}
	return f.Handler.Handle(ctx, r)
}

func (f notFoundFilter) WithAttrs(as []slog.Attr) slog.Handler {
	return notFoundFilter{f.Handler.WithAttrs(as)}
}

func (f notFoundFilter) WithGroup(name string) slog.Handler {
	return notFoundFilter{f.Handler.WithGroup(name)}
}
