package hubserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testServer(t *testing.T) (*httptest.Server, *httptest.Server, *Repo) {
	t.Helper()
	card := MemFile("README.md", []byte("---\nlicense: mit\ntags: [x]\npipeline_tag: text-generation\n---\nHello.\n"))
	big := MemFile("sub/model-Q4_K_M.gguf", []byte(strings.Repeat("0123456789", 100)))
	repo := NewRepo("org/name", card, big, MemFile("config.json", []byte(`{"a":1}`)))
	repo.Refs["refs/pr/1"] = repo.Refs["main"]
	s := New([]*Repo{repo}, Options{Tokens: []string{"good"}})
	hub := httptest.NewServer(s)
	cdn := httptest.NewServer(s.CDNHandler())
	s.SetCDN(cdn.URL)
	t.Cleanup(func() { hub.Close(); cdn.Close() })
	return hub, cdn, repo
}

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestRepoInfo(t *testing.T) {
	hub, _, repo := testServer(t)
	for _, rev := range []string{"main", "refs%2Fpr%2F1", repo.Refs["main"]} {
		resp, err := http.Get(hub.URL + "/api/models/org/name/revision/" + rev + "?blobs=true")
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			ID       string
			SHA      string
			Gated    any
			CardData map[string]any
			Tags     []string
			Siblings []struct {
				RFilename string
				BlobID    string
				Size      int64
				LFS       *struct {
					SHA256      string
					Size        int64
					PointerSize int64
				}
			}
		}
		json.NewDecoder(resp.Body).Decode(&info)
		resp.Body.Close()
		if resp.StatusCode != 200 || info.ID != "org/name" || info.SHA != repo.Refs["main"] || info.Gated != false {
			t.Fatalf("rev %s: %d %+v", rev, resp.StatusCode, info)
		}
		if info.CardData["license"] != "mit" || len(info.Siblings) != 3 {
			t.Errorf("card/siblings: %+v", info)
		}
		for _, s := range info.Siblings {
			if s.RFilename == "sub/model-Q4_K_M.gguf" && (s.LFS == nil || s.LFS.Size != 1000 || s.LFS.PointerSize == 0 || s.Size != 1000) {
				t.Errorf("LFS sibling %+v", s)
			}
			if s.RFilename == "config.json" && (s.LFS != nil || s.BlobID != GitBlobID([]byte(`{"a":1}`))) {
				t.Errorf("git sibling %+v", s)
			}
		}
	}
	for path, code := range map[string]string{
		"/api/models/org/nope/revision/main": "RepoNotFound",
		"/api/models/org/name/revision/v9":   "RevisionNotFound",
	} {
		resp, _ := http.Get(hub.URL + path)
		resp.Body.Close()
		if resp.Header.Get("X-Error-Code") != code {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("X-Error-Code"))
		}
	}
}

func TestResolve(t *testing.T) {
	hub, cdn, repo := testServer(t)
	c := noRedirect()
	// LFS: a redirect to the CDN with the Hub's headers.
	req, _ := http.NewRequest("HEAD", hub.URL+"/org/name/resolve/main/sub/model-Q4_K_M.gguf", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	f := repo.Commits[repo.Refs["main"]].file("sub/model-Q4_K_M.gguf")
	if resp.StatusCode != 302 || resp.Header.Get("X-Linked-Etag") != `"`+f.SHA256+`"` || resp.Header.Get("X-Linked-Size") != "1000" ||
		resp.Header.Get("X-Repo-Commit") != repo.Refs["main"] || !strings.HasPrefix(resp.Header.Get("Location"), cdn.URL+"/lfs/"+f.SHA256) {
		t.Fatalf("LFS HEAD: %d %v", resp.StatusCode, resp.Header)
	}
	// The CDN serves ranges.
	req, _ = http.NewRequest("GET", resp.Header.Get("Location"), nil)
	req.Header.Set("Range", "bytes=995-")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 206 || string(b) != "56789" || resp.Header.Get("Content-Range") != "bytes 995-999/1000" {
		t.Errorf("range: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	// Git files: served directly with their blob id as ETag.
	resp, err = c.Get(hub.URL + "/org/name/resolve/main/config.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"a":1}` || resp.Header.Get("ETag") != `"`+GitBlobID(b)+`"` || resp.Header.Get("X-Repo-Commit") != repo.Refs["main"] {
		t.Errorf("git file: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	resp, _ = c.Get(hub.URL + "/org/name/resolve/main/nope.json")
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("X-Error-Code") != "EntryNotFound" {
		t.Errorf("missing file: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestGatedAndPrivate(t *testing.T) {
	gated := NewRepo("org/gated", MemFile("a.gguf", []byte("abc")))
	gated.Gated = true
	private := NewRepo("org/private", MemFile("a.gguf", []byte("abc")))
	private.Private = true
	s := httptest.NewServer(New([]*Repo{gated, private}, Options{Tokens: []string{"good"}}))
	defer s.Close()
	get := func(path, token string) *http.Response {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tt := range []struct {
		path, token string
		status      int
		code        string
	}{
		{"/api/models/org/gated", "", 200, ""},
		{"/org/gated/resolve/main/a.gguf", "", 401, "GatedRepo"},
		{"/org/gated/resolve/main/a.gguf", "bad", 403, "GatedRepo"},
		{"/org/gated/resolve/main/a.gguf", "good", 200, ""},
		{"/api/models/org/private", "", 401, "RepoNotFound"},
		{"/api/models/org/private", "bad", 404, "RepoNotFound"},
		{"/api/models/org/private", "good", 200, ""},
	} {
		resp := get(tt.path, tt.token)
		if resp.StatusCode != tt.status || resp.Header.Get("X-Error-Code") != tt.code {
			t.Errorf("%s token %q: %d %q, want %d %q", tt.path, tt.token, resp.StatusCode, resp.Header.Get("X-Error-Code"), tt.status, tt.code)
		}
	}
}

func TestLoadTree(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "org", "m", "sub"), 0o755)
	os.MkdirAll(filepath.Join(root, "org", "m", ".git"), 0o755)
	os.WriteFile(filepath.Join(root, "org", "m", "w.safetensors"), []byte("12345678"), 0o644)
	os.WriteFile(filepath.Join(root, "org", "m", "sub", "c.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(root, "org", "m", ".git", "HEAD"), []byte("x"), 0o644)
	repos, err := LoadTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].ID != "org/m" {
		t.Fatalf("%+v", repos)
	}
	c := repos[0].resolve("main")
	if len(c.Files) != 2 || !c.file("w.safetensors").LFS || c.file("sub/c.json").LFS {
		t.Errorf("files %+v", c.Files)
	}
	again, _ := LoadTree(root)
	if again[0].Refs["main"] != repos[0].Refs["main"] {
		t.Error("commit sha not deterministic")
	}
}
