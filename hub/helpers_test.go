package hub_test

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubtest"
)

// newClient returns a client of srv with an empty cache and fast retries.
func newClient(t testing.TB, srv *hubtest.Server) *hub.Client {
	t.Helper()
	cache, err := hub.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &hub.Client{Endpoint: srv.URL, Cache: cache, RetryWait: time.Millisecond, Concurrency: 4, Logger: slog.New(slog.DiscardHandler)}
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA256(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256Hex(b)
}
