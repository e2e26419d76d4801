package hub_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
)

func mustRef(t testing.TB, s string) hub.Ref {
	t.Helper()
	r, err := hub.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ggufRepo is a small GGUF repo: three quants, one split in two parts.
func ggufRepo() (*hubserver.Repo, map[string][]byte) {
	data := map[string][]byte{
		"README.md":                    []byte("---\nlicense: apache-2.0\n---\n# Tiny\n\nA tiny model.\n"),
		"config.json":                  []byte(`{"model_type":"llama"}`),
		"tiny-Q4_K_M.gguf":             randBytes(1, 300_000),
		"tiny-Q8_0.gguf":               randBytes(2, 200_000),
		"tiny-F16-00001-of-00002.gguf": randBytes(3, 150_000),
		"tiny-F16-00002-of-00002.gguf": randBytes(4, 120_000),
	}
	var files []*hubserver.File
	for p, b := range data {
		files = append(files, hubserver.MemFile(p, b))
	}
	return hubserver.NewRepo("acme/tiny-GGUF", files...), data
}

func TestPullGGUFLayout(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	c.Token = hubtest.Token
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	commit := repo.Refs["main"]
	if snap.Commit != commit {
		t.Errorf("commit %s, want %s", snap.Commit, commit)
	}
	var got []string
	for _, f := range snap.Files {
		got = append(got, f.Path)
		if fileSHA256(t, f.LocalPath) != sha256Hex(data[f.Path]) {
			t.Errorf("%s: wrong content", f.Path)
		}
	}
	if strings.Join(got, ",") != "README.md,tiny-Q4_K_M.gguf" {
		t.Errorf("files %v", got)
	}
	if snap.ModelPath() != filepath.Join(snap.Dir, "tiny-Q4_K_M.gguf") {
		t.Errorf("ModelPath %s", snap.ModelPath())
	}
	if snap.Downloaded != int64(len(data["README.md"])+len(data["tiny-Q4_K_M.gguf"])) {
		t.Errorf("downloaded %d", snap.Downloaded)
	}
	// Layout: blob names are the ETags, links are relative, refs/main has no newline.
	repoDir := filepath.Join(c.Cache.Dir, "models--acme--tiny-GGUF")
	lfsBlob := sha256Hex(data["tiny-Q4_K_M.gguf"])
	link, err := os.Readlink(filepath.Join(repoDir, "snapshots", commit, "tiny-Q4_K_M.gguf"))
	if err != nil || link != "../../blobs/"+lfsBlob {
		t.Errorf("link %q, %v", link, err)
	}
	gitBlob := hubserver.GitBlobID(data["README.md"])
	if link, _ := os.Readlink(filepath.Join(repoDir, "snapshots", commit, "README.md")); link != "../../blobs/"+gitBlob {
		t.Errorf("README link %q, want blob %s", link, gitBlob)
	}
	if b, _ := os.ReadFile(filepath.Join(repoDir, "refs", "main")); string(b) != commit {
		t.Errorf("refs/main = %q", b)
	}
	if _, err := os.Stat(filepath.Join(c.Cache.Dir, ".locks", "models--acme--tiny-GGUF", lfsBlob+".lock")); err != nil {
		t.Errorf("lock file: %v", err)
	}
	// The token went to the Hub, never to the CDN; the user agent names llm.
	var cdnGets int
	for _, r := range srv.Requests() {
		if r.Server == "cdn" {
			cdnGets++
			if r.Auth {
				t.Errorf("Authorization sent to the CDN: %+v", r)
			}
		} else if !r.Auth {
			t.Errorf("no token sent to the Hub: %+v", r)
		}
		if !strings.HasPrefix(r.Agent, "llm/") {
			t.Errorf("user agent %q", r.Agent)
		}
	}
	if cdnGets == 0 {
		t.Error("LFS file not fetched through the CDN redirect")
	}

	// Pulling again downloads nothing and asks only for the repo info.
	srv.Reset()
	snap2, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if snap2.Downloaded != 0 || srv.ServedTotal() != 0 {
		t.Errorf("second pull downloaded %d (served %d)", snap2.Downloaded, srv.ServedTotal())
	}
	if n := len(srv.Requests()); n != 1 {
		t.Errorf("second pull made %d requests, want 1: %+v", n, srv.Requests())
	}

	// Another quant shares the cache; a split quant comes with all parts.
	snap3, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF:f16"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap3.Files) != 3 || !strings.HasSuffix(snap3.ModelPath(), "tiny-F16-00001-of-00002.gguf") {
		t.Errorf("split pull: %+v", snap3.Files)
	}
}

func TestPullSafetensorsShared(t *testing.T) {
	srv := hubtest.Shared(t)
	c := newClient(t, srv)
	snap, err := c.Pull(context.Background(), mustRef(t, "test/tiny-random-gpt2"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Format() != "safetensors" || len(snap.Files) != 8 {
		t.Errorf("format %s, %d files", snap.Format(), len(snap.Files))
	}
	f, ok := snap.File("model.safetensors")
	if !ok || f.ETag != "8111d5afb0715dbf5a31396d31432cb56370ba23f6650a035ea0fc8a20b4e500" {
		t.Errorf("model.safetensors: %+v", f)
	}
	// The stories model by file name.
	snap, err = c.Pull(context.Background(), mustRef(t, "test/stories260K/stories260K.gguf"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fileSHA256(t, snap.ModelPath()); got != "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d" {
		t.Errorf("stories260K sha256 %s", got)
	}
	// Two GGUF models and no quant tags: the name must say which.
	if _, err := c.Pull(context.Background(), mustRef(t, "test/stories260K"), hub.PullOptions{}); !errors.Is(err, hub.ErrAmbiguous) {
		t.Errorf("ambiguous pull: %v", err)
	}
}

func TestPullGated(t *testing.T) {
	repo, _ := ggufRepo()
	repo.Gated = true
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	_, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrGated) || !errors.Is(err, hub.ErrUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	if !strings.Contains(err.Error(), "accept its licence") || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("no advice in %q", err)
	}
	c.Token = "hf_wrong_token_value"
	_, err = c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrGated) || strings.Contains(err.Error(), c.Token) {
		t.Fatalf("wrong token: %v", err)
	}
	c.Token = hubtest.Token
	if _, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{}); err != nil {
		t.Fatalf("right token: %v", err)
	}
}

func TestPullPrivate(t *testing.T) {
	repo, _ := ggufRepo()
	repo.Private = true
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	_, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("private without token: %v", err)
	}
	c.Token = hubtest.Token
	if _, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPullNotFound(t *testing.T) {
	repo, _ := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	ctx := context.Background()
	if _, err := c.Pull(ctx, mustRef(t, "acme/nope"), hub.PullOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("missing repo: %v", err)
	}
	r := mustRef(t, "acme/tiny-GGUF")
	r.Revision = "v9"
	if _, err := c.Pull(ctx, r, hub.PullOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("missing revision: %v", err)
	}
	if _, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF:Q5_K_M"), hub.PullOptions{}); !errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "Q4_K_M") {
		t.Errorf("missing quant: %v", err)
	}
	if _, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF/none.gguf"), hub.PullOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	// The missing file is remembered as huggingface_hub remembers it.
	marker := filepath.Join(c.Cache.Dir, "models--acme--tiny-GGUF", ".no_exist", repo.Refs["main"], "none.gguf")
	if _, err := os.Stat(marker); err != nil {
		t.Errorf(".no_exist marker: %v", err)
	}
}

func TestPullChecksumMismatch(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	srv.AddFault(hubtest.Fault{File: "tiny-Q4_K_M.gguf", Corrupt: true})
	_, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	blob := c.Cache.BlobPath("acme/tiny-GGUF", sha256Hex(data["tiny-Q4_K_M.gguf"]))
	for _, p := range []string{blob, blob + ".incomplete"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", filepath.Base(p), err)
		}
	}
	// A corrupt git file (checked by its blob id) is rejected too.
	srv.ClearFaults()
	srv.AddFault(hubtest.Fault{File: "README.md", Corrupt: true})
	c = newClient(t, srv)
	if _, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF/README.md"), hub.PullOptions{}); !errors.Is(err, hub.ErrChecksum) {
		t.Errorf("README: %v", err)
	}
}

func TestPullDroppedConnectionsResume(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	// Cut the first two transfers mid-file: the client resumes with Range.
	srv.AddFault(hubtest.Fault{File: "tiny-Q4_K_M.gguf", DropAfter: 100_000, Times: 2})
	srv.AddFault(hubtest.Fault{File: "README.md", Status: 503, Times: 1})
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := snap.File("tiny-Q4_K_M.gguf")
	if fileSHA256(t, f.LocalPath) != sha256Hex(data["tiny-Q4_K_M.gguf"]) {
		t.Error("wrong content after resume")
	}
	var ranges []string
	for _, r := range srv.Requests() {
		if r.Server == "cdn" && r.Method == "GET" {
			ranges = append(ranges, r.Range)
		}
	}
	// Whole pieces are kept, so the retries start at a piece boundary at most
	// 256 KiB back; here the file is small enough that nothing is lost.
	if len(ranges) != 3 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || !strings.HasPrefix(ranges[2], "bytes=") {
		t.Errorf("CDN ranges %q", ranges)
	}
	if got, want := srv.Served("acme/tiny-GGUF", "tiny-Q4_K_M.gguf"), int64(len(data["tiny-Q4_K_M.gguf"])); got != want {
		t.Errorf("served %d bytes, want exactly the file (%d)", got, want)
	}
}

func TestPullResumeIncomplete(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	content := data["tiny-Q4_K_M.gguf"]
	blob := c.Cache.BlobPath("acme/tiny-GGUF", sha256Hex(content))
	os.MkdirAll(filepath.Dir(blob), 0o755)
	const have = 123_457
	if err := os.WriteFile(blob+".incomplete", content[:have], 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF/tiny-Q4_K_M.gguf"), hub.PullOptions{Exclude: []string{"README.md"}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Downloaded != int64(len(content)-have) {
		t.Errorf("downloaded %d, want %d", snap.Downloaded, len(content)-have)
	}
	if fileSHA256(t, blob) != sha256Hex(content) {
		t.Error("wrong content")
	}
	if _, err := os.Stat(blob + ".incomplete"); !errors.Is(err, os.ErrNotExist) {
		t.Error(".incomplete left behind")
	}
}

func TestPullChunked(t *testing.T) {
	big := randBytes(9, 3<<20+12345)
	repo := hubserver.NewRepo("acme/big", hubserver.MemFile("big.gguf", big))
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	c.ChunkSize = 512 << 10
	// A drop inside one chunk is resumed within that chunk.
	srv.AddFault(hubtest.Fault{File: "big.gguf", DropAfter: 300_000, Times: 1})
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/big"), hub.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fileSHA256(t, snap.ModelPath()) != sha256Hex(big) {
		t.Error("wrong content")
	}
	var ranged int
	for _, r := range srv.Requests() {
		if r.Server == "cdn" && r.Range != "" {
			ranged++
		}
	}
	if ranged < 7 {
		t.Errorf("%d ranged requests, want the file in chunks", ranged)
	}
}

func TestPullRejectsTraversal(t *testing.T) {
	for _, name := range []string{"../../../escape.gguf", "sub/../../escape.gguf", "/abs.gguf"} {
		t.Run(name, func(t *testing.T) {
			evil := hubserver.MemFile("x.gguf", randBytes(5, 1000))
			evil.Path = name
			repo := hubserver.NewRepo("acme/evil", evil, hubserver.MemFile("ok.gguf", randBytes(6, 1000)))
			srv := hubtest.New(t, repo)
			c := newClient(t, srv)
			_, err := c.Pull(context.Background(), mustRef(t, "acme/evil/ok.gguf"), hub.PullOptions{})
			if !errors.Is(err, hub.ErrInvalidName) {
				t.Fatalf("err = %v, want ErrInvalidName", err)
			}
			filepath.Walk(filepath.Dir(c.Cache.Dir), func(p string, info os.FileInfo, err error) error {
				if b := filepath.Base(p); err == nil && (b == "escape.gguf" || b == "abs.gguf") {
					t.Errorf("file written: %s", p)
				}
				return nil
			})
		})
	}
}

func TestPullConcurrentSameRepo(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c1 := newClient(t, srv)
	c2 := &hub.Client{Endpoint: srv.URL, Cache: c1.Cache}
	srv.AddFault(hubtest.Fault{File: "tiny-Q4_K_M.gguf", Rate: 1 << 20})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*hub.Client{c1, c2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := int64(len(data["tiny-Q4_K_M.gguf"]))
	if got := srv.Served("acme/tiny-GGUF", "tiny-Q4_K_M.gguf"); got != n {
		t.Errorf("served %d bytes for two concurrent pulls, want one download (%d)", got, n)
	}
	blobs, _ := os.ReadDir(filepath.Join(c1.Cache.Dir, "models--acme--tiny-GGUF", "blobs"))
	if len(blobs) != 2 {
		t.Errorf("blobs: %v", blobs)
	}
	if fileSHA256(t, c1.Cache.BlobPath("acme/tiny-GGUF", sha256Hex(data["tiny-Q4_K_M.gguf"]))) != sha256Hex(data["tiny-Q4_K_M.gguf"]) {
		t.Error("corrupt blob")
	}
}

func TestPullDiskFull(t *testing.T) {
	repo, _ := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	hub.SetFreeSpace(c, func(string) (int64, error) { return 1000, nil })
	_, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrDiskFull) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.ServedTotal(); n != 0 {
		t.Errorf("%d bytes fetched before the space check", n)
	}
}

func TestPullOffline(t *testing.T) {
	repo, _ := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	ctx := context.Background()
	if _, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Offline = true
	snap, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{})
	if err != nil || len(snap.Files) != 2 || snap.Commit != repo.Refs["main"] {
		t.Fatalf("offline pull: %+v, %v", snap, err)
	}
	_, err = c.Pull(ctx, mustRef(t, "acme/tiny-GGUF:Q8_0"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrOffline) || !strings.Contains(err.Error(), "Q8_0") {
		t.Errorf("offline, quant not cached: %v", err)
	}
	_, err = c.Pull(ctx, mustRef(t, "acme/other"), hub.PullOptions{})
	if !errors.Is(err, hub.ErrOffline) || !strings.Contains(err.Error(), "acme/other") {
		t.Errorf("offline, repo not cached: %v", err)
	}
	r := mustRef(t, "acme/tiny-GGUF")
	r.Revision = "v2"
	if _, err = c.Pull(ctx, r, hub.PullOptions{}); !errors.Is(err, hub.ErrOffline) || !strings.Contains(err.Error(), "v2") {
		t.Errorf("offline, revision not cached: %v", err)
	}
	// No network: the cache answers.
	c.Offline = false
	srv.Close()
	if snap, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{}); err != nil || len(snap.Files) != 2 {
		t.Errorf("unreachable hub: %v", err)
	}
	if _, err := c.Pull(ctx, mustRef(t, "acme/tiny-GGUF:Q8_0"), hub.PullOptions{}); !errors.Is(err, hub.ErrOffline) {
		t.Errorf("unreachable hub, not cached: %v", err)
	}
}

func TestPullIncludeExclude(t *testing.T) {
	repo, _ := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF"), hub.PullOptions{Include: []string{"*.json", "*.md"}, Exclude: []string{"README*"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Files) != 1 || snap.Files[0].Path != "config.json" {
		t.Errorf("files %+v", snap.Files)
	}
}

// TestPullBadPartialStartsOver: a .incomplete whose bytes are wrong fails
// verification after resuming, and the download starts over once.
func TestPullBadPartialStartsOver(t *testing.T) {
	repo, data := ggufRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	content := data["tiny-Q4_K_M.gguf"]
	blob := c.Cache.BlobPath("acme/tiny-GGUF", sha256Hex(content))
	os.MkdirAll(filepath.Dir(blob), 0o755)
	os.WriteFile(blob+".incomplete", make([]byte, 1000), 0o644) // zeros, not the content
	snap, err := c.Pull(context.Background(), mustRef(t, "acme/tiny-GGUF/tiny-Q4_K_M.gguf"), hub.PullOptions{Exclude: []string{"README.md"}})
	if err != nil {
		t.Fatal(err)
	}
	if fileSHA256(t, blob) != sha256Hex(content) || snap.Downloaded != int64(len(content)-1000+len(content)) {
		t.Errorf("downloaded %d", snap.Downloaded)
	}
}

// TestPullCheck: PullOptions.Check sees a safetensors checkpoint's small
// files before its weights are fetched and can stop the pull; it is not
// called for a selection the user made (a file, Include), nor for a GGUF
// repo.
func TestPullCheck(t *testing.T) {
	srv := hubtest.Shared(t)
	ctx := context.Background()
	var seen []string
	refuse := errors.New("refused")
	check := func(dir string) error {
		entries, _ := os.ReadDir(dir)
		seen = seen[:0]
		for _, e := range entries {
			seen = append(seen, e.Name())
		}
		return refuse
	}
	served := srv.Served("test/tiny-llama-st", "model.safetensors")
	_, err := newClient(t, srv).Pull(ctx, mustRef(t, "test/tiny-llama-st"), hub.PullOptions{Check: check})
	if !errors.Is(err, refuse) || !slices.Contains(seen, "config.json") || !slices.Contains(seen, "tokenizer.json") || slices.Contains(seen, "model.safetensors") {
		t.Errorf("default selection: %v, the check saw %v", err, seen)
	}
	if n := srv.Served("test/tiny-llama-st", "model.safetensors"); n != served {
		t.Errorf("%d bytes of weights fetched before a failed check", n-served)
	}
	for _, tc := range []struct {
		ref  string
		opts hub.PullOptions
	}{
		{"test/tiny-llama-st/model.safetensors", hub.PullOptions{Check: check}},
		{"test/tiny-llama-st", hub.PullOptions{Check: check, Include: []string{"*.safetensors"}}},
		{"test/stories260K/stories260K.gguf", hub.PullOptions{Check: check}},
	} {
		if _, err := newClient(t, srv).Pull(ctx, mustRef(t, tc.ref), tc.opts); err != nil {
			t.Errorf("%s %v: %v (the check must not run)", tc.ref, tc.opts.Include, err)
		}
	}
}
