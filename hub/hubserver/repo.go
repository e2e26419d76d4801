package hubserver

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/llm-go/llm/hub"
)

// Repo is a model repo: commits and the branches pointing at them.
type Repo struct {
	ID      string
	Gated   bool // files need a token the server accepts (the API info stays public)
	Private bool // everything needs a token the server accepts
	Commits map[string]*Commit
	Refs    map[string]string // branch or tag -> commit sha; "main" at least
}

// Commit is the tree of a repo at one commit.
type Commit struct {
	SHA          string
	Files        []*File // sorted by path
	LastModified time.Time
}

// File is one file of a commit. Its content is Data, or else the file at
// Source on disk.
type File struct {
	Path   string
	Size   int64
	LFS    bool   // stored with git LFS: served by sha256, through the CDN
	SHA256 string // of the content
	// GitOID is the git blob id: of the content for a git file, of the LFS
	// pointer for an LFS file (what the Hub lists as blobId).
	GitOID  string
	Source  string
	Data    []byte
	ModTime time.Time
}

// ETag is the ETag the Hub serves the file with: the sha256 of an LFS file,
// the git blob id of another.
func (f *File) ETag() string {
	if f.LFS {
		return f.SHA256
	}
	return f.GitOID
}

// open returns the content.
func (f *File) open() (io.ReadSeekCloser, error) {
	if f.Source == "" {
		return nopCloser{bytes.NewReader(f.Data)}, nil
	}
	return os.Open(f.Source)
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// lfsExts are the file endings the Hub's default .gitattributes stores with
// LFS.
var lfsExts = []string{".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack", ".model", ".npz", ".ot", ".tflite", ".zip", ".tar", ".gz", ".zst", ".parquet", ".arrow", ".pkl", ".pickle"}

// lfsThreshold: larger files are LFS whatever their name (the Hub requires it).
const lfsThreshold = 10 << 20

// IsLFS reports whether the Hub would store a file of this name and size
// with git LFS.
func IsLFS(path string, size int64) bool {
	if size == 0 {
		return false
	}
	if size > lfsThreshold {
		return true
	}
	low := strings.ToLower(path)
	for _, e := range lfsExts {
		if strings.HasSuffix(low, e) {
			return true
		}
	}
	return false
}

// hashFile sets f's size and hashes from its content r (and, for a git
// file, f.open() once more for the git blob id).
func hashFile(f *File, r io.Reader) error {
	h256 := sha256.New()
	n, err := io.Copy(h256, r)
	if err != nil {
		return err
	}
	f.Size = n
	f.SHA256 = hex.EncodeToString(h256.Sum(nil))
	if f.LFS {
		f.GitOID = GitBlobID([]byte(LFSPointer(f.SHA256, f.Size)))
		return nil
	}
	// Git blob id of the content: sha1("blob N\0" + content).
	rs, err := f.open()
	if err != nil {
		return err
	}
	defer rs.Close()
	h1 := sha1.New()
	fmt.Fprintf(h1, "blob %d\x00", f.Size)
	if _, err := io.Copy(h1, rs); err != nil {
		return err
	}
	f.GitOID = hex.EncodeToString(h1.Sum(nil))
	return nil
}

// GitBlobID is git's object id of a blob with this content.
func GitBlobID(b []byte) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// LFSPointer is the git LFS pointer file for content with this sha256 and size.
func LFSPointer(sha string, size int64) string {
	return fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", sha, size)
}

// MemFile returns an in-memory file, LFS or not as IsLFS decides.
func MemFile(path string, data []byte) *File {
	f := &File{Path: path, Data: data, LFS: IsLFS(path, int64(len(data)))}
	if err := hashFile(f, bytes.NewReader(data)); err != nil {
		panic(err) // reading memory cannot fail
	}
	return f
}

// DiskFile describes the file at source as repo file path, hashing it.
func DiskFile(path, source string) (*File, error) {
	st, err := os.Stat(source)
	if err != nil {
		return nil, err
	}
	f := &File{Path: path, Source: source, LFS: IsLFS(path, st.Size()), ModTime: st.ModTime()}
	r, err := os.Open(source)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := hashFile(f, r); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return f, nil
}

// CommitSHA is a deterministic commit id for a file list: the sha1 of each
// path with its ETag.
func CommitSHA(files []*File) string {
	h := sha1.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%s\n", f.Path, f.ETag())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewRepo returns a repo with one commit holding files, which "main" points
// at.
func NewRepo(id string, files ...*File) *Repo {
	sorted := append([]*File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	c := &Commit{SHA: CommitSHA(sorted), Files: sorted, LastModified: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, f := range sorted {
		if f.ModTime.After(c.LastModified) {
			c.LastModified = f.ModTime.UTC()
		}
	}
	return &Repo{ID: id, Commits: map[string]*Commit{c.SHA: c}, Refs: map[string]string{"main": c.SHA}}
}

// file returns the file at path in commit c.
func (c *Commit) file(path string) *File {
	i := sort.Search(len(c.Files), func(i int) bool { return c.Files[i].Path >= path })
	if i < len(c.Files) && c.Files[i].Path == path {
		return c.Files[i]
	}
	return nil
}

// resolve returns the commit a revision (branch, tag or sha) names.
func (r *Repo) resolve(rev string) *Commit {
	if sha, ok := r.Refs[rev]; ok {
		return r.Commits[sha]
	}
	return r.Commits[rev]
}

// card parses the YAML front matter of the commit's README.md.
func (c *Commit) card() map[string]any {
	f := c.file("README.md")
	if f == nil || f.Size > 1<<20 {
		return nil
	}
	rs, err := f.open()
	if err != nil {
		return nil
	}
	defer rs.Close()
	b, err := io.ReadAll(rs)
	if err != nil {
		return nil
	}
	card, err := hub.ParseCard(b)
	if err != nil {
		return nil
	}
	return card.Data
}
