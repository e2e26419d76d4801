package server

import "testing"

// TestHostMemory: offloaded blocks leave host memory only when a GPU
// backend is loaded, and the host keeps at least one block's share.
func TestHostMemory(t *testing.T) {
	m := memEstimate{Weights: 900, KV: 100, Layers: 10}
	for _, c := range []struct {
		ngl  int
		gpu  bool
		want uint64
	}{
		{0, true, 1000}, {5, false, 1000}, {-1, false, 1000},
		{5, true, 500}, {8, true, 200}, {10, true, 100}, {-1, true, 100}, {99, true, 100},
	} {
		if got := m.Host(c.ngl, c.gpu); got != c.want {
			t.Errorf("ngl %d, gpu %v: %d, want %d", c.ngl, c.gpu, got, c.want)
		}
	}
	if got := (memEstimate{Weights: 7}).Host(-1, true); got != 7 {
		t.Errorf("unknown layers: %d", got)
	}
}
