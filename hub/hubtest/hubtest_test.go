package hubtest

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llm-go/llm/hub/hubserver"
)

func TestFaults(t *testing.T) {
	data := []byte(strings.Repeat("abcdefghij", 10_000))
	s := New(t, hubserver.NewRepo("org/m", hubserver.MemFile("m.gguf", data)))
	get := func() (*http.Response, []byte, error) {
		resp, err := http.Get(s.URL + "/org/m/resolve/main/m.gguf") // follows the CDN redirect
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	s.AddFault(Fault{DropAfter: 12_345, Times: 1})
	_, b, err := get()
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 12_345 {
		t.Errorf("drop: %d bytes, %v", len(b), err)
	}
	_, b, err = get() // Times: 1
	if err != nil || len(b) != len(data) {
		t.Errorf("after drop: %d bytes, %v", len(b), err)
	}

	s.AddFault(Fault{Corrupt: true, Times: 1})
	_, b, _ = get()
	if b[0] != 'a'^0xff || string(b[1:]) != string(data[1:]) {
		t.Error("corrupt: first byte not flipped")
	}

	s.AddFault(Fault{Status: 503, Times: 1})
	if resp, _, _ := get(); resp.StatusCode != 503 {
		t.Errorf("status fault: %d", resp.StatusCode)
	}

	s.AddFault(Fault{Rate: 200_000, Times: 1})
	start := time.Now()
	_, b, err = get()
	if el := time.Since(start); err != nil || len(b) != len(data) || el < 400*time.Millisecond {
		t.Errorf("rate: %d bytes in %v, %v", len(b), el, err)
	}

	s.AddFault(Fault{Delay: 200 * time.Millisecond, Times: 1})
	start = time.Now()
	if _, _, err := get(); err != nil || time.Since(start) < 200*time.Millisecond {
		t.Errorf("delay: %v after %v", err, time.Since(start))
	}

	// 6 successful-or-not downloads went through the CDN, byte counts add up.
	var cdn int
	for _, r := range s.Requests() {
		if r.Server == "cdn" {
			cdn++
		}
	}
	if cdn != 6 {
		t.Errorf("%d CDN requests", cdn)
	}
	if got := s.Served("org/m", "m.gguf"); got != int64(12_345+4*len(data)) {
		t.Errorf("served %d", got)
	}
}
