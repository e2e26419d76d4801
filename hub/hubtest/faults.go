package hubtest

import (
	"io"
	"net/http"
	"path"
	"time"

	"github.com/llm-go/llm/hub/hubserver"
)

// Fault is a misbehaviour applied to the content responses (resolve or CDN)
// of matching files.
type Fault struct {
	Repo string // repo id; "" for any
	File string // path.Match pattern of the file; "" for any
	// Times is how many responses the fault applies to; 0 means all.
	Times int

	Status    int           // answer with this status instead of the content
	Delay     time.Duration // wait this long before answering
	Rate      int64         // send at most this many bytes per second
	DropAfter int64         // close the connection after this many body bytes (>0)
	Corrupt   bool          // flip the bits of the first body byte sent
	used      int
}

// AddFault installs a fault. Faults are checked in the order added; the
// first matching one with uses left applies.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fc := f
	s.faults = append(s.faults, &fc)
}

// ClearFaults removes all faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

func (s *Server) takeFault(repo, file string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.Repo != "" && f.Repo != repo {
			continue
		}
		if f.File != "" {
			if ok, _ := path.Match(f.File, file); !ok {
				continue
			}
		}
		if f.Times > 0 && f.used >= f.Times {
			continue
		}
		f.used++
		cp := *f
		return &cp
	}
	return nil
}

// wrap is the hubserver hook: it applies faults and counts bytes.
func (s *Server) wrap(w http.ResponseWriter, r *http.Request, repo *hubserver.Repo, f *hubserver.File) (http.ResponseWriter, bool) {
	key := repo.ID + "/" + f.Path
	fault := s.takeFault(repo.ID, f.Path)
	if fault == nil {
		return &countingWriter{ResponseWriter: w, s: s, key: key}, true
	}
	if fault.Delay > 0 && !sleepCtx(r, fault.Delay) {
		return nil, false
	}
	if fault.Status != 0 {
		w.Header().Set("X-Error-Message", "injected fault")
		http.Error(w, "injected fault", fault.Status)
		return nil, false
	}
	return &faultyWriter{countingWriter: countingWriter{ResponseWriter: w, s: s, key: key}, f: fault, r: r, start: time.Now()}, true
}

// countingWriter counts body bytes; it keeps sendfile through ReadFrom.
type countingWriter struct {
	http.ResponseWriter
	s   *Server
	key string
}

func (c *countingWriter) add(n int) {
	c.s.mu.Lock()
	c.s.served[c.key] += int64(n)
	c.s.mu.Unlock()
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.add(n)
	return n, err
}

func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.add(int(n))
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// faultyWriter throttles, corrupts and cuts the body.
type faultyWriter struct {
	countingWriter
	f       *Fault
	r       *http.Request
	start   time.Time
	sent    int64
	flipped bool
}

func (w *faultyWriter) Write(b []byte) (int, error) {
	total := 0
	for len(b) > 0 {
		n := len(b)
		if w.f.Rate > 0 {
			n = min(n, int(max(w.f.Rate/20, 1))) // ~50ms slices
		}
		if w.f.DropAfter > 0 {
			left := w.f.DropAfter - w.sent
			if left <= 0 {
				w.drop()
			}
			n = min(n, int(left))
		}
		chunk := b[:n]
		if w.f.Corrupt && !w.flipped && n > 0 {
			c := append([]byte(nil), chunk...)
			c[0] ^= 0xff
			chunk, w.flipped = c, true
		}
		m, err := w.countingWriter.Write(chunk)
		total += m
		w.sent += int64(m)
		if err != nil {
			return total, err
		}
		b = b[n:]
		if w.f.Rate > 0 {
			http.NewResponseController(w.ResponseWriter).Flush()
			due := w.start.Add(time.Duration(float64(w.sent) / float64(w.f.Rate) * float64(time.Second)))
			if d := time.Until(due); d > 0 && !sleepCtx(w.r, d) {
				return total, w.r.Context().Err()
			}
		}
	}
	if w.f.DropAfter > 0 && w.sent >= w.f.DropAfter {
		w.drop()
	}
	return total, nil
}

// ReadFrom goes through Write, so every byte meets the fault.
func (w *faultyWriter) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{w}, r)
}

// drop flushes what was written and aborts the connection mid-body.
func (w *faultyWriter) drop() {
	http.NewResponseController(w.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}
