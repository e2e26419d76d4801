package hub

import (
	"sort"
	"strings"
	"time"
)

// Snapshot is a set of a repo's files at one commit, in the cache.
type Snapshot struct {
	Repo     string
	Revision string // as asked ("main", a tag); empty when listed from the cache
	Commit   string
	Refs     []string // cached refs that point at Commit (for listings)
	Dir      string   // snapshots/{commit}
	Files    []File
	// Downloaded is how many bytes the Pull that returned this snapshot
	// received over the network (0 when all came from the cache).
	Downloaded int64
}

// File is one file of a Snapshot.
type File struct {
	Path         string // in the repo, '/'-separated
	LocalPath    string // snapshots/{commit}/{path}, a symlink to the blob
	BlobPath     string // blobs/{etag}
	ETag         string
	Size         int64
	LastModified time.Time // of the blob
}

// ModelPath returns the file to hand to a loader: the (first part of the)
// GGUF file when there is one, else the snapshot folder (safetensors).
func (s *Snapshot) ModelPath() string {
	var ggufs []string
	for _, f := range s.Files {
		if isGGUF(f.Path) && !isMMProj(f.Path) {
			ggufs = append(ggufs, f.LocalPath)
		}
	}
	if len(ggufs) > 0 {
		sort.Strings(ggufs)
		return ggufs[0]
	}
	return s.Dir
}

// Format is "gguf", "safetensors" or "other", from the file names.
func (s *Snapshot) Format() string {
	st := false
	for _, f := range s.Files {
		switch {
		case isGGUF(f.Path):
			return "gguf"
		case strings.HasSuffix(f.Path, ".safetensors"):
			st = true
		}
	}
	if st {
		return "safetensors"
	}
	return "other"
}

// Quants lists the quantizations named by the snapshot's GGUF files.
func (s *Snapshot) Quants() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range s.Files {
		if !isGGUF(f.Path) || isMMProj(f.Path) {
			continue
		}
		if q := QuantOf(f.Path); q != "" && !seen[q] {
			seen[q] = true
			out = append(out, q)
		}
	}
	sort.Strings(out)
	return out
}

// Size is the bytes of the snapshot's files, each blob counted once.
func (s *Snapshot) Size() int64 {
	seen := map[string]bool{}
	var n int64
	for _, f := range s.Files {
		if !seen[f.BlobPath] {
			seen[f.BlobPath] = true
			n += f.Size
		}
	}
	return n
}

// LastModified is the newest blob's modification time.
func (s *Snapshot) LastModified() time.Time {
	var t time.Time
	for _, f := range s.Files {
		if f.LastModified.After(t) {
			t = f.LastModified
		}
	}
	return t
}

// File returns the snapshot's file at path p.
func (s *Snapshot) File(p string) (File, bool) {
	for _, f := range s.Files {
		if f.Path == p {
			return f, true
		}
	}
	return File{}, false
}

func fileFromEntry(e snapshotEntry) File {
	f := File{Path: e.path, LocalPath: e.local, BlobPath: e.blob, ETag: e.etag}
	if e.info != nil {
		f.Size = e.info.Size()
		f.LastModified = e.info.ModTime()
	}
	return f
}
