package link

import (
	"bytes"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// MemoryStore is paho's in-flight message store kept in memory, like
// mqtt.MemoryStore, but holding each packet as its encoded bytes and
// handing out a fresh packet on every Get.
//
// Why: paho's MemoryStore returns the very packet that Publish queued. On a
// reconnect, resume sets Dup on it while the new connection's writer may be
// encoding the same packet: a data race (eclipse-paho/paho.mqtt.golang#703,
// open in v1.5.1) that the race detector reports in any test that restarts
// a broker under load. With copies, resume only touches its own.
//
// It is not durable, by design: durability lives in bbolt (paho's
// FileStore does not fsync and panics on I/O errors).
type MemoryStore struct {
	mu   sync.Mutex
	msgs map[string][]byte
}

var _ mqtt.Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore { return &MemoryStore{msgs: map[string][]byte{}} }

// Open is a no-op: the store lives as long as the value.
func (s *MemoryStore) Open() {}

// Close is a no-op.
func (s *MemoryStore) Close() {}

// Put keeps an encoded copy of message. paho calls it in the publishing
// goroutine before the packet is handed to the writer, so encoding it here
// does not race with the write.
func (s *MemoryStore) Put(key string, message packets.ControlPacket) {
	var buf bytes.Buffer
	if err := message.Write(&buf); err != nil {
		return // only a broken writer fails; the protocol above repairs a lost message
	}
	s.mu.Lock()
	s.msgs[key] = buf.Bytes()
	s.mu.Unlock()
}

// Get decodes a fresh copy of the packet under key (nil if none).
func (s *MemoryStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	b, ok := s.msgs[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	p, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return p
}

// All lists the keys.
func (s *MemoryStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.msgs))
	for k := range s.msgs {
		keys = append(keys, k)
	}
	return keys
}

// Del forgets key.
func (s *MemoryStore) Del(key string) {
	s.mu.Lock()
	delete(s.msgs, key)
	s.mu.Unlock()
}

// Reset forgets everything.
func (s *MemoryStore) Reset() {
	s.mu.Lock()
	s.msgs = map[string][]byte{}
	s.mu.Unlock()
}
