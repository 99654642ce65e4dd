package ntpsync

import (
	"runtime"
	"testing"
)

// TestSynced: on Linux the kernel answers (synchronised or not, this
// machine's business); elsewhere the error says why not.
func TestSynced(t *testing.T) {
	synced, err := Synced()
	if runtime.GOOS != "linux" {
		if err == nil {
			t.Fatal("want an error off Linux")
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this machine's clock synchronised by NTP: %v", synced)
}
