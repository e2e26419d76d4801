package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubtest"
)

func TestHubServe(t *testing.T) {
	// Pull into one cache, serve that cache, pull from the mirror into another.
	srv := hubtest.Shared(t)
	cache := hubEnv(t, srv)
	if code, _, errOut := run(t, "", "pull", "-q", "test/tiny-random-gpt2"); code != 0 {
		t.Fatal(errOut)
	}
	ready := make(chan string, 1)
	hubServeReady = func(a net.Addr) { ready <- a.String() }
	defer func() { hubServeReady = nil }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr bytes.Buffer
	go func() {
		done <- runMain(ctx, &stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &serveErr}, []string{"hub", "serve", cache, "--addr", "127.0.0.1:0"})
	}()
	var addr string
	select {
	case addr = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("hub serve did not start: %s", serveErr.String())
	}
	mirror, _ := hub.OpenCache(t.TempDir())
	c := &hub.Client{Endpoint: "http://" + addr, Cache: mirror}
	ref, _ := hub.ParseRef("test/tiny-random-gpt2")
	snap, err := c.Pull(ctx, ref, hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := hub.OpenCache(cache)
	want, err := orig.Resolve(ref, hub.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Commit != want.Commit || len(snap.Files) != len(want.Files) {
		t.Errorf("mirror pull: commit %s files %d, want %s %d", snap.Commit, len(snap.Files), want.Commit, len(want.Files))
	}
	for i, f := range snap.Files {
		if f.ETag != want.Files[i].ETag || f.Size != want.Files[i].Size {
			t.Errorf("%s: %s %d, want %s %d", f.Path, f.ETag, f.Size, want.Files[i].ETag, want.Files[i].Size)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("hub serve exited %d: %s", code, serveErr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hub serve did not stop")
	}
	if !strings.Contains(serveErr.String(), "test/tiny-random-gpt2") {
		t.Errorf("serve banner: %s", serveErr.String())
	}
}
