package server_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BenchmarkAggregateThroughput measures the tokens per second of all
// clients together, each generating 64 tokens per request (the end-of-text
// token banned) against one model with as many sequences as clients.
func BenchmarkAggregateThroughput(b *testing.B) {
	const tokens = 64
	for _, clients := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Parallel = clients
			_, url := start(b, cfg)
			req := map[string]any{"model": storiesName, "prompt": "Once upon a time", "max_tokens": tokens,
				"temperature": 0, "logit_bias": map[string]any{"2": -100}}
			begin := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				for range clients {
					wg.Go(func() {
						if resp, body := post(b, url+"/v1/completions", req); resp.StatusCode != http.StatusOK {
							b.Errorf("%d %s", resp.StatusCode, body)
						}
					})
				}
				wg.Wait()
			}
			elapsed := time.Since(begin)
			b.ReportMetric(float64(b.N*clients*tokens)/elapsed.Seconds(), "tokens/s")
		})
	}
}
