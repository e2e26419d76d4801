package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Bandwidth is a measurement of the machine's memory-read bandwidth.
type Bandwidth struct {
	CPU         string    `json:"cpu"`          // CPUModel when measured
	GBps        float64   `json:"gbps"`         // best of the runs, in GB/s (1e9 bytes)
	Threads     int       `json:"threads"`      // goroutines that read
	BufferBytes int64     `json:"buffer_bytes"` // bytes read per run
	Measured    time.Time `json:"measured"`
}

// DefaultBandwidthBuffer is the buffer MeasureBandwidth reads by default:
// much larger than any CPU cache.
const DefaultBandwidthBuffer = 1 << 30

// bandwidthSink keeps the compiler from dropping the sums.
//
//lint:ignore U1000 written so that the read loops are not optimised away
var bandwidthSink uint64

// MeasureBandwidth measures how fast threads goroutines (0: one per CPU)
// read a buffer of size bytes (0: DefaultBandwidthBuffer, reduced to a
// quarter of the available memory on small machines), each summing its
// share as uint64s. It returns the best of runs runs in GB/s. The buffer is
// written first, so that its pages are real memory, and freed after.
func MeasureBandwidth(ctx context.Context, size int64, threads, runs int) (float64, error) {
	if size <= 0 {
		size = DefaultBandwidthBuffer
		if avail, err := MemAvailable(); err == nil && uint64(size) > avail/4 {
			size = int64(avail / 4)
		}
	}
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	runs = max(runs, 1)
	words := int(size / 8)
	words -= words % (threads * 8)
	if words < threads*8 {
		return 0, fmt.Errorf("bench: bandwidth buffer of %d bytes is too small", size)
	}
	buf := make([]uint64, words)
	defer debug.FreeOSMemory()
	parallel := func(f func(part []uint64)) {
		var wg sync.WaitGroup
		per := words / threads
		for t := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f(buf[t*per : (t+1)*per])
			}()
		}
		wg.Wait()
	}
	parallel(func(part []uint64) {
		for i := range part {
			part[i] = uint64(i)
		}
	})
	best := 0.0
	for range runs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var mu sync.Mutex
		var total uint64
		start := time.Now()
		parallel(func(part []uint64) {
			s := sumWords(part)
			mu.Lock()
			total += s
			mu.Unlock()
		})
		elapsed := time.Since(start).Seconds()
		bandwidthSink += total
		if gbps := float64(words*8) / elapsed / 1e9; gbps > best {
			best = gbps
		}
	}
	buf = nil
	return best, nil
}

// sumWords sums x with eight independent accumulators, so that loads, not
// additions, bound the loop. len(x) is a multiple of 8.
func sumWords(x []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for i := 0; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s0 += v[0]
		s1 += v[1]
		s2 += v[2]
		s3 += v[3]
		s4 += v[4]
		s5 += v[5]
		s6 += v[6]
		s7 += v[7]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

// BandwidthCachePath returns where CachedBandwidth keeps its measurement:
// llm/bandwidth.json under the user cache directory.
func BandwidthCachePath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("bench: no cache directory: %w", err)
	}
	return filepath.Join(dir, "llm", "bandwidth.json"), nil
}

// CachedBandwidth returns the bandwidth measured earlier and stored at path
// when it was measured on this CPU model, and otherwise (or with force)
// measures it with MeasureBandwidth's defaults (best of 5 runs) and stores
// it. measured reports whether it measured now.
func CachedBandwidth(ctx context.Context, path string, force bool) (bw Bandwidth, measured bool, err error) {
	cpu := CPUModel()
	if !force {
		if data, err := os.ReadFile(path); err == nil {
			if json.Unmarshal(data, &bw) == nil && bw.CPU == cpu && bw.GBps > 0 {
				return bw, false, nil
			}
		}
	}
	bw, err = measureDefault(ctx)
	if err != nil {
		return Bandwidth{}, false, err
	}
	bw.CPU = cpu
	data, _ := json.MarshalIndent(bw, "", "  ")
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return bw, true, fmt.Errorf("bench: caching the bandwidth: %w", err)
	}
	return bw, true, nil
}

// measureDefault measures with MeasureBandwidth's defaults, best of 5 runs
// (tests replace it).
var measureDefault = func(ctx context.Context) (Bandwidth, error) {
	size := int64(DefaultBandwidthBuffer)
	if avail, err := MemAvailable(); err == nil && uint64(size) > avail/4 {
		size = int64(avail / 4)
	}
	threads := runtime.NumCPU()
	gbps, err := MeasureBandwidth(ctx, size, threads, 5)
	if err != nil {
		return Bandwidth{}, err
	}
	return Bandwidth{GBps: gbps, Threads: threads, BufferBytes: size, Measured: time.Now().UTC().Truncate(time.Second)}, nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
