// Command smartboxctl is the technician's tool for a SmartBox: it creates a
// box's store, imports keys and grants from a JSON file, and lists keys,
// grants and the event outbox.
//
// Usage:
//
//	smartboxctl init    --data DIR --box-id ID
//	smartboxctl import  --data DIR [--slots N] FILE.json
//	smartboxctl keys    --data DIR
//	smartboxctl grants  --data DIR
//	smartboxctl events  --data DIR [--after SEQ] [--limit N]
//
// The store is DIR/box.db. smartboxd holds it while it runs (bbolt takes an
// exclusive file lock), so smartboxctl then reports that the store is in use
// by the daemon's pid: stop the daemon first, or use its console.
//
// Codes are never shown: the store keeps only an HMAC of each code.
//
// Exit status: 0 on success, 1 on a failure, 2 on a usage error.
package main
