package hub_test

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"os"
	"testing"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
)

// BenchmarkPullFiles pulls 8 files of 8 MiB from the fake Hub one by one
// (j=1) and in parallel (j=8): on raw loopback, and with each connection
// throttled to 32 MB/s as a CDN limits a single stream.
func BenchmarkPullFiles(b *testing.B) {
	const n, size = 8, 8 << 20
	var files []*hubserver.File
	for i := range n {
		files = append(files, hubserver.MemFile(fmt.Sprintf("part-%d.safetensors", i), randBytes(uint64(100+i), size)))
	}
	repo := hubserver.NewRepo("bench/files", files...)
	for _, throttle := range []int64{0, 32e6} {
		for _, j := range []int{1, 8} {
			name := fmt.Sprintf("loopback/j=%d", j)
			if throttle > 0 {
				name = fmt.Sprintf("throttled-32MB/s/j=%d", j)
			}
			b.Run(name, func(b *testing.B) {
				srv := hubtest.New(b, repo)
				if throttle > 0 {
					srv.AddFault(hubtest.Fault{Rate: throttle})
				}
				b.SetBytes(n * size)
				for b.Loop() {
					b.StopTimer()
					c := newClient(b, srv)
					c.Concurrency = j
					b.StartTimer()
					if _, err := c.Pull(context.Background(), mustRef(b, "bench/files"), hub.PullOptions{Include: []string{"*"}}); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.RemoveAll(c.Cache.Dir)
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkPullChunks pulls one 64 MiB file over one stream and in 8 MiB
// ranged chunks, with each connection throttled to 32 MB/s.
func BenchmarkPullChunks(b *testing.B) {
	const size = 64 << 20
	repo := hubserver.NewRepo("bench/one", hubserver.MemFile("one.gguf", randBytes(7, size)))
	for _, chunk := range []int64{1 << 40, 8 << 20} {
		name := "one-stream"
		if chunk < 1<<40 {
			name = "chunks-8MiB"
		}
		b.Run(name, func(b *testing.B) {
			srv := hubtest.New(b, repo)
			srv.AddFault(hubtest.Fault{Rate: 32e6})
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				c := newClient(b, srv)
				c.Concurrency, c.ChunkSize = 8, chunk
				b.StartTimer()
				if _, err := c.Pull(context.Background(), mustRef(b, "bench/one"), hub.PullOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(c.Cache.Dir)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkHash measures the hashing a download pays per byte: sha256 for
// LFS files, the git blob sha1 for small ones (256 KiB writes, as pieces).
func BenchmarkHash(b *testing.B) {
	buf := randBytes(3, 256<<10)
	for _, tt := range []struct {
		name string
		new  func() interface{ Write([]byte) (int, error) }
	}{
		{"sha256", func() interface{ Write([]byte) (int, error) } { return sha256.New() }},
		{"sha1", func() interface{ Write([]byte) (int, error) } { return sha1.New() }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			h := tt.new()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				h.Write(buf)
			}
		})
	}
}
