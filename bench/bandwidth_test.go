package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestMeasureBandwidth(t *testing.T) {
	gbps, err := MeasureBandwidth(context.Background(), 16<<20, 2, 2)
	if err != nil || gbps <= 0 {
		t.Fatalf("MeasureBandwidth = %v, %v", gbps, err)
	}
	if _, err := MeasureBandwidth(context.Background(), 64, 4, 1); err == nil {
		t.Error("a 64-byte buffer was accepted")
	}
	if sumWords([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}) != 136 {
		t.Error("sumWords")
	}
}

func TestCachedBandwidth(t *testing.T) {
	calls := 0
	saved := measureDefault
	defer func() { measureDefault = saved }()
	measureDefault = func(ctx context.Context) (Bandwidth, error) {
		calls++
		return Bandwidth{GBps: 12.5 * float64(calls), Threads: 2, BufferBytes: 1 << 20}, nil
	}
	path := filepath.Join(t.TempDir(), "llm", "bandwidth.json")
	ctx := context.Background()
	bw, measured, err := CachedBandwidth(ctx, path, false)
	if err != nil || !measured || bw.GBps != 12.5 || bw.CPU != CPUModel() {
		t.Fatalf("first: %+v, %v, %v", bw, measured, err)
	}
	bw, measured, err = CachedBandwidth(ctx, path, false)
	if err != nil || measured || bw.GBps != 12.5 || calls != 1 {
		t.Errorf("second: %+v measured %v (%d measurements)", bw, measured, calls)
	}
	bw, measured, _ = CachedBandwidth(ctx, path, true)
	if !measured || bw.GBps != 25 {
		t.Errorf("forced: %+v, %v", bw, measured)
	}
	// Another CPU's measurement is not reused.
	data, _ := json.Marshal(Bandwidth{CPU: "some other CPU", GBps: 99})
	os.WriteFile(path, data, 0o644)
	if bw, measured, _ = CachedBandwidth(ctx, path, false); !measured || bw.GBps == 99 {
		t.Errorf("other CPU: %+v, %v", bw, measured)
	}
}
