package hub_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
)

// TestMain doubles as a helper process: with HUB_TEST_HELPER=pull the test
// binary pulls HUB_TEST_REF from HUB_TEST_ENDPOINT into HUB_TEST_CACHE,
// prints the bytes it downloaded, and exits.
func TestMain(m *testing.M) {
	if os.Getenv("HUB_TEST_HELPER") == "pull" {
		os.Exit(helperPull())
	}
	os.Exit(m.Run())
}

func helperPull() int {
	cache, err := hub.OpenCache(os.Getenv("HUB_TEST_CACHE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ref, err := hub.ParseRef(os.Getenv("HUB_TEST_REF"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := &hub.Client{Endpoint: os.Getenv("HUB_TEST_ENDPOINT"), Cache: cache, RetryWait: time.Millisecond}
	snap, err := c.Pull(context.Background(), ref, hub.PullOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(snap.Downloaded)
	return 0
}

func helperCmd(t *testing.T, srv *hubtest.Server, cache *hub.Cache, ref string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"HUB_TEST_HELPER=pull",
		"HUB_TEST_ENDPOINT="+srv.URL,
		"HUB_TEST_CACHE="+cache.Dir,
		"HUB_TEST_REF="+ref,
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	return cmd, &out
}

// TestResumeAfterSIGKILL kills a pulling process mid-file and pulls again:
// only the remainder is transferred and the blob verifies.
func TestResumeAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	content := randBytes(11, 3<<20)
	repo := hubserver.NewRepo("acme/slow", hubserver.MemFile("slow.gguf", content))
	srv := hubtest.New(t, repo)
	srv.AddFault(hubtest.Fault{File: "slow.gguf", Rate: 1 << 20, Times: 1})
	c := newClient(t, srv)
	blob := c.Cache.BlobPath("acme/slow", sha256Hex(content))

	cmd, out := helperCmd(t, srv, c.Cache, "acme/slow")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if st, err := os.Stat(blob + ".incomplete"); err == nil && st.Size() >= 512<<10 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no partial download after 20s; helper said: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	st, err := os.Stat(blob + ".incomplete")
	if err != nil {
		t.Fatal(err)
	}
	partial := st.Size()
	if partial <= 0 || partial >= int64(len(content)) {
		t.Fatalf("partial size %d of %d", partial, len(content))
	}
	if _, err := os.Stat(blob); err == nil {
		t.Fatal("blob complete before the kill: slow the transfer down")
	}

	srv.Reset()
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/slow"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(content)) - partial
	if snap.Downloaded != want {
		t.Errorf("second pull received %d bytes, want %d (size %d - partial %d)", snap.Downloaded, want, len(content), partial)
	}
	if got := srv.Served("acme/slow", "slow.gguf"); got != want {
		t.Errorf("server sent %d bytes on the second pull, want %d", got, want)
	}
	var rng string
	for _, r := range srv.Requests() {
		if r.Server == "cdn" && r.Method == "GET" {
			rng = r.Range
		}
	}
	if wantRange := fmt.Sprintf("bytes=%d-%d", partial, len(content)-1); rng != wantRange {
		t.Errorf("range %q, want %q", rng, wantRange)
	}
	if fileSHA256(t, blob) != sha256Hex(content) {
		t.Error("sha256 mismatch after resume")
	}
	t.Logf("killed at %d of %d bytes; resumed with %d", partial, len(content), snap.Downloaded)
}

// TestConcurrentProcesses runs two processes pulling the same repo at once:
// one downloads the blob, the other waits on its lock and reuses it.
func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	content := randBytes(12, 1<<20)
	repo := hubserver.NewRepo("acme/shared", hubserver.MemFile("m.gguf", content))
	srv := hubtest.New(t, repo)
	srv.AddFault(hubtest.Fault{File: "m.gguf", Rate: 4 << 20})
	cache, _ := hub.OpenCache(t.TempDir())
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		cmd, out := helperCmd(t, srv, cache, "acme/shared")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var downloaded []int64
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v: %s", i, err, outs[i])
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(outs[i].String()), 10, 64)
		downloaded = append(downloaded, n)
	}
	if downloaded[0]+downloaded[1] != int64(len(content)) {
		t.Errorf("downloaded %v, want one full download between the two", downloaded)
	}
	if got := srv.Served("acme/shared", "m.gguf"); got != int64(len(content)) {
		t.Errorf("server sent %d bytes, want %d", got, len(content))
	}
	blob := cache.BlobPath("acme/shared", sha256Hex(content))
	if fileSHA256(t, blob) != sha256Hex(content) {
		t.Error("corrupt blob")
	}
	ents, _ := os.ReadDir(cache.RepoDir("acme/shared") + "/blobs")
	if len(ents) != 1 {
		t.Errorf("blobs dir: %v", ents)
	}
}
