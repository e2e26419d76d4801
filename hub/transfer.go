package hub

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// pieceSize is the unit a transfer reads, hands to the writer and writes: an
// interrupted download keeps everything up to the last whole piece.
const pieceSize = 256 << 10

// maxAheadPieces bounds the pieces buffered for one chunk fetched ahead.
const maxAheadPieces = 256

var piecePool = sync.Pool{New: func() any { b := make([]byte, pieceSize); return &b }}

// piece is a run of bytes of a file, in order, or the error that ended a
// range.
type piece struct {
	buf *[]byte
	n   int
	err error
}

// connSem bounds the connections of one Pull. Waiting file downloads get
// free connections before a large file may take more for ranged chunks.
type connSem struct {
	ch      chan struct{}
	waiting atomic.Int32
}

func newConnSem(n int) *connSem { return &connSem{ch: make(chan struct{}, n)} }

func (s *connSem) acquire(ctx context.Context) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case s.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *connSem) tryAcquire() bool {
	if s.waiting.Load() > 0 {
		return false
	}
	select {
	case s.ch <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *connSem) release() { <-s.ch }

// span is the byte range [start, end) of a file; end < 0 means to EOF.
type span struct{ start, end int64 }

func splitSpans(off, size, chunk int64) []span {
	if size < 0 {
		return []span{{off, -1}}
	}
	if rest := size - off; rest < chunk || rest-chunk < chunk {
		return []span{{off, size}}
	}
	var out []span
	for s := off; s < size; s += chunk {
		out = append(out, span{s, min(s+chunk, size)})
	}
	return out
}

// fetchRange streams bytes [sp.start, sp.end) of url into out as pieces, in
// order, retrying with a Range request from where it stopped when the
// connection fails. It closes out; a final error is sent as a piece.
func (c *Client) fetchRange(ctx context.Context, url string, sp span, total int64, out chan<- piece, received *atomic.Int64) {
	defer close(out)
	pos := sp.start
	failures := 0
	for {
		before := pos
		err := c.streamOnce(ctx, url, &pos, sp.end, total, out, received)
		if err == nil {
			return
		}
		if pos > before {
			failures = 0 // progress: a fresh set of retries
		}
		if !retryable(ctx, err) || failures >= c.maxRetries() {
			select {
			case out <- piece{err: err}:
			case <-ctx.Done():
			}
			return
		}
		c.logger().Debug("hub: transfer interrupted, resuming", "at", pos, "err", err)
		if werr := c.backoff(ctx, failures); werr != nil {
			select {
			case out <- piece{err: err}:
			case <-ctx.Done():
			}
			return
		}
		failures++
	}
}

// streamOnce makes one GET for [*pos, end) and sends what it reads, moving
// *pos forward. It returns nil once end (or EOF, when end < 0) is reached.
func (c *Client) streamOnce(ctx context.Context, url string, pos *int64, end, total int64, out chan<- piece, received *atomic.Int64) error {
	if end >= 0 && *pos >= end {
		return nil
	}
	hdr := http.Header{}
	switch {
	case end >= 0 && (*pos > 0 || end < total):
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", *pos, end-1))
	case end < 0 && *pos > 0:
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", *pos))
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, _, err := c.follow(rctx, http.MethodGet, url, hdr, true)
	if err != nil {
		return err
	}
	body := resp.Body
	defer body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != *pos {
			return fmt.Errorf("server answered range %q for bytes=%d-", resp.Header.Get("Content-Range"), *pos)
		}
	case http.StatusOK:
		if *pos > 0 { // no Range support: skip what we have
			n, err := io.CopyN(io.Discard, body, *pos)
			received.Add(n)
			if err != nil {
				return err
			}
		}
	default:
		return statusError(resp)
	}
	timeout := c.readTimeout()
	var stalled atomic.Bool
	watchdog := time.AfterFunc(timeout, func() { stalled.Store(true); cancel() })
	defer watchdog.Stop()
	for {
		want := int64(pieceSize)
		if end >= 0 {
			want = min(want, end-*pos)
		}
		if want == 0 {
			return nil
		}
		bp := piecePool.Get().(*[]byte)
		n, err := io.ReadFull(body, (*bp)[:want])
		watchdog.Stop()
		if n > 0 {
			received.Add(int64(n))
			select {
			case out <- piece{buf: bp, n: n}:
			case <-ctx.Done():
				piecePool.Put(bp)
				return ctx.Err()
			}
			*pos += int64(n)
		} else {
			piecePool.Put(bp)
		}
		switch {
		case err == nil:
		case end < 0 && (err == io.EOF || err == io.ErrUnexpectedEOF):
			return nil
		case err == io.EOF:
			return io.ErrUnexpectedEOF
		case stalled.Load() && ctx.Err() == nil:
			return fmt.Errorf("no data received for %v", timeout)
		default:
			return err
		}
		watchdog.Reset(timeout)
	}
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	v, ok := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// sink receives a file's bytes in order: n bytes of *bp, which it must
// return to piecePool when done with them.
type sink func(bp *[]byte, n int) error

// stream fetches [off, size) of url into write, in order. One connection
// (held by the caller) streams the file; when the file spans several chunks
// and sem has free connections, later chunks are fetched ahead in parallel
// and buffered (a chunk at most per extra connection).
func (c *Client) stream(ctx context.Context, url string, off, size int64, sem *connSem, write sink, received *atomic.Int64) error {
	chunk := c.chunkSize()
	spans := splitSpans(off, size, chunk)
	capPieces := int(min((chunk+pieceSize-1)/pieceSize, maxAheadPieces))
	ctx, cancel := context.WithCancel(ctx)
	chans := make([]chan piece, len(spans))
	var wg sync.WaitGroup
	next, inflight, held := 0, 0, 1
	launch := func() {
		i := next
		next++
		inflight++
		ch := make(chan piece, capPieces)
		chans[i] = ch
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.fetchRange(ctx, url, spans[i], size, ch, received)
		}()
	}
	defer func() {
		cancel()
		for i := 0; i < next; i++ {
			for p := range chans[i] {
				if p.buf != nil {
					piecePool.Put(p.buf)
				}
			}
		}
		wg.Wait()
		for ; held > 1; held-- {
			sem.release()
		}
	}()
	for i := range spans {
		for next < len(spans) && (next <= i || inflight < held) {
			launch()
		}
		for next < len(spans) && sem.tryAcquire() {
			held++
			launch()
		}
		for p := range chans[i] {
			if p.err != nil {
				return p.err
			}
			if err := write(p.buf, p.n); err != nil {
				return err
			}
		}
		inflight--
		if next == len(spans) {
			for held > max(inflight, 1) {
				held--
				sem.release()
			}
		}
	}
	return nil
}
