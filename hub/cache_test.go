package hub_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
	"github.com/llm-go/llm/hub/hubtest"
)

// testdata/pycache is a cache as huggingface_hub lays it out after
// snapshot_download("test/tiny") and a hf_hub_download of the missing
// generation_config.json: blobs named by ETag (git blob sha1 for small files,
// sha256 for LFS), relative symlinks (one more "../" for sub/), refs/main
// holding the commit with no newline, a .no_exist marker, and lock files.
const pyCommit = "5f2a0b1c3d4e5f60718293a4b5c6d7e8f9a0b1c2"

// copyTree copies a folder, keeping symlinks as they are.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pyCache returns a writable copy of testdata/pycache.
func pyCache(t testing.TB) *hub.Cache {
	t.Helper()
	dir := t.TempDir()
	copyTree(t, "testdata/pycache", dir)
	c, err := hub.OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listing describes a cache tree: every entry with its kind, symlink target
// or content hash. Files are compared by content, not by time or mode.
func listing(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case rel == ".":
		case d.IsDir():
			out = append(out, "d "+rel)
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, "l "+rel+" -> "+target)
		default:
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			out = append(out, "f "+rel+" "+hex.EncodeToString(s[:8]))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestPythonCacheRead(t *testing.T) {
	c := pyCache(t)
	repos, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].Repo != "test/tiny" || len(repos[0].Snapshots) != 1 {
		t.Fatalf("List: %+v", repos)
	}
	s := repos[0].Snapshots[0]
	if s.Commit != pyCommit || !reflect.DeepEqual(s.Refs, []string{"main"}) || len(s.Files) != 4 {
		t.Errorf("snapshot: %+v", s)
	}
	if s.Format() != "gguf" || !reflect.DeepEqual(s.Quants(), []string{"Q4_K_M"}) || s.Size() != 221+96+45+4096 {
		t.Errorf("format %s quants %v size %d", s.Format(), s.Quants(), s.Size())
	}
	if repos[0].SizeOnDisk != 221+96+45+4096 {
		t.Errorf("size on disk %d", repos[0].SizeOnDisk)
	}

	snap, err := c.Resolve(mustRef(t, "test/tiny"), hub.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Files) != 2 || snap.ModelPath() != filepath.Join(c.Dir, "models--test--tiny", "snapshots", pyCommit, "model-Q4_K_M.gguf") {
		t.Errorf("Resolve: %+v", snap)
	}
	if b, err := os.ReadFile(snap.ModelPath()); err != nil || string(b[:4]) != "GGUF" {
		t.Errorf("read through the symlink: %v", err)
	}
	snap, err = c.Resolve(mustRef(t, "test/tiny/sub/tokenizer.json"), hub.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := snap.File("sub/tokenizer.json"); !ok || f.Size != 45 {
		t.Errorf("nested file: %+v", snap.Files)
	}
	// .no_exist answers "this file does not exist" without the network.
	if _, err := c.Resolve(mustRef(t, "test/tiny/generation_config.json"), hub.Selection{}); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf(".no_exist: %v", err)
	}
	r := mustRef(t, "test/tiny")
	r.Revision = pyCommit
	if _, err := c.Resolve(r, hub.Selection{}); err != nil {
		t.Errorf("by commit: %v", err)
	}
}

// serveCache serves a cache tree with the fake Hub.
func serveCache(t *testing.T, dir string) *hubtest.Server {
	t.Helper()
	repos, err := hubserver.LoadCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	return hubtest.New(t, repos...)
}

// TestLayoutMatchesPython pulls the repo of testdata/pycache into an empty
// cache and compares the trees entry by entry.
func TestLayoutMatchesPython(t *testing.T) {
	srv := serveCache(t, "testdata/pycache")
	c := newClient(t, srv)
	ctx := context.Background()
	if _, err := c.Pull(ctx, mustRef(t, "test/tiny"), hub.PullOptions{Include: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, mustRef(t, "test/tiny/generation_config.json"), hub.PullOptions{}); !errors.Is(err, hub.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	want := listing(t, "testdata/pycache")
	got := listing(t, c.Cache.Dir)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cache layout differs from huggingface_hub's:\ngot:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestPythonCacheReuse pulls into a cache Python filled: nothing is fetched.
func TestPythonCacheReuse(t *testing.T) {
	srv := serveCache(t, "testdata/pycache")
	c := newClient(t, srv)
	c.Cache = pyCache(t)
	before := listing(t, c.Cache.Dir)
	snap, err := c.Pull(context.Background(), mustRef(t, "test/tiny"), hub.PullOptions{Include: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Downloaded != 0 || srv.ServedTotal() != 0 || len(snap.Files) != 4 {
		t.Errorf("downloaded %d, served %d, files %d", snap.Downloaded, srv.ServedTotal(), len(snap.Files))
	}
	if after := listing(t, c.Cache.Dir); !reflect.DeepEqual(after, before) {
		t.Errorf("cache changed:\n%s", strings.Join(after, "\n"))
	}
}

// twoCommitRepo has main and v1 sharing one blob.
func twoCommitRepo() *hubserver.Repo {
	shared := hubserver.MemFile("m-Q4_K_M.gguf", randBytes(21, 50_000))
	old := hubserver.NewRepo("acme/two", shared, hubserver.MemFile("README.md", []byte("v1\n")))
	cur := hubserver.NewRepo("acme/two", shared, hubserver.MemFile("README.md", []byte("v2\n")), hubserver.MemFile("m-Q8_0.gguf", randBytes(22, 60_000)))
	for sha, c := range old.Commits {
		cur.Commits[sha] = c
		cur.Refs["v1"] = sha
	}
	return cur
}

func TestCacheRemove(t *testing.T) {
	repo := twoCommitRepo()
	srv := hubtest.New(t, repo)
	c := newClient(t, srv)
	ctx := context.Background()
	v1 := mustRef(t, "acme/two")
	v1.Revision = "v1"
	for _, r := range []hub.Ref{v1, mustRef(t, "acme/two"), mustRef(t, "acme/two:Q8_0")} {
		if _, err := c.Pull(ctx, r, hub.PullOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	blobs := func() int {
		ents, _ := os.ReadDir(filepath.Join(c.Cache.RepoDir("acme/two"), "blobs"))
		return len(ents)
	}
	if n := blobs(); n != 4 { // shared gguf, Q8_0, two READMEs
		t.Fatalf("%d blobs", n)
	}
	// Removing the Q8_0 quant deletes its link and its blob only.
	res, err := c.Cache.Remove(mustRef(t, "acme/two:Q8_0"))
	if err != nil || res.Files != 1 || res.Blobs != 1 || res.Bytes != 60_000 {
		t.Fatalf("rm :Q8_0 = %+v, %v", res, err)
	}
	if _, err := c.Cache.Resolve(mustRef(t, "acme/two"), hub.Selection{}); err != nil {
		t.Errorf("main after rm :Q8_0: %v", err)
	}
	// Removing v1 keeps the blob main still links to.
	res, err = c.Cache.Remove(v1)
	if err != nil || res.Snapshots != 1 || res.Blobs != 1 {
		t.Fatalf("rm v1 = %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(c.Cache.RepoDir("acme/two"), "refs", "v1")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("refs/v1 left")
	}
	snap, err := c.Cache.Resolve(mustRef(t, "acme/two"), hub.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(snap.ModelPath()); err != nil || len(b) != 50_000 {
		t.Errorf("shared blob gone: %v", err)
	}
	if _, err := c.Cache.Remove(mustRef(t, "acme/two:Q8_0")); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("rm again: %v", err)
	}
	// The whole repo.
	if _, err := c.Cache.Remove(mustRef(t, "acme/two")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Cache.RepoDir("acme/two")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("repo folder left")
	}
	if repos, _ := c.Cache.List(); len(repos) != 0 {
		t.Errorf("List after rm: %+v", repos)
	}
}

// TestCacheIgnoresEscapingLinks: a snapshot link pointing outside blobs/ is
// neither listed, nor resolved, nor followed by Remove.
func TestCacheIgnoresEscapingLinks(t *testing.T) {
	c := pyCache(t)
	outside := filepath.Join(t.TempDir(), "secret.gguf")
	os.WriteFile(outside, []byte("secret"), 0o644)
	snapDir := filepath.Join(c.RepoDir("test/tiny"), "snapshots", pyCommit)
	os.Symlink(outside, filepath.Join(snapDir, "evil-Q8_0.gguf"))
	os.Symlink("../../../../../../../../../../"+outside, filepath.Join(snapDir, "evil2-Q8_0.gguf"))
	repos, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range repos[0].Snapshots[0].Files {
		if strings.HasPrefix(f.Path, "evil") {
			t.Errorf("escaping link listed: %+v", f)
		}
	}
	if _, err := c.Resolve(mustRef(t, "test/tiny:Q8_0"), hub.Selection{}); !errors.Is(err, hub.ErrOffline) {
		t.Errorf("escaping link resolved: %v", err)
	}
	c.Remove(mustRef(t, "test/tiny"))
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("file outside the cache removed: %v", err)
	}
}
