package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Removed reports what Cache.Remove deleted.
type Removed struct {
	Files     int   // snapshot entries removed
	Snapshots int   // snapshot folders removed
	Blobs     int   // blobs deleted
	Bytes     int64 // bytes freed
}

// Remove deletes from the cache what ref names:
//
//   - "org/repo" with no revision: the whole repo folder (and its locks);
//   - "org/repo" with a revision: that snapshot and the refs to it;
//   - "org/repo:QUANT" or "org/repo/file": those files, in every snapshot
//     (or in the revision's only, when one is set).
//
// Blobs are deleted only when no remaining snapshot of the repo links to
// them. Snapshots left empty are removed with their refs. ErrNotFound when
// nothing matched.
func (c *Cache) Remove(ref Ref) (Removed, error) {
	var res Removed
	if err := ref.Validate(); err != nil {
		return res, err
	}
	dir := c.RepoDir(ref.Repo)
	if _, err := os.Lstat(dir); err != nil {
		return res, fmt.Errorf("%s is not in the cache %s: %w", ref.Repo, c.Dir, ErrNotFound)
	}
	repo, err := c.Repo(ref.Repo)
	if err != nil {
		return res, err
	}
	if ref.Quant == "" && ref.File == "" && ref.Revision == "" {
		for _, s := range repo.Snapshots {
			res.Snapshots++
			res.Files += len(s.Files)
		}
		res.Bytes = dirSize(dir)
		if blobs, err := os.ReadDir(filepath.Join(dir, "blobs")); err == nil {
			res.Blobs = len(blobs)
		}
		if err := os.RemoveAll(dir); err != nil {
			return res, err
		}
		os.RemoveAll(filepath.Join(c.Dir, ".locks", RepoFolderName(ref.Repo)))
		return res, nil
	}

	var commit string
	if ref.Revision != "" {
		if commit, err = c.ReadRef(ref.Repo, ref.Revision); err != nil {
			return res, fmt.Errorf("revision %s of %s is not in the cache: %w", ref.Revision, ref.Repo, ErrNotFound)
		}
	}
	candidates := map[string]bool{} // blobs whose links were removed
	emptied := map[string]bool{}    // commits whose snapshot is gone
	for _, s := range repo.Snapshots {
		if commit != "" && s.Commit != commit {
			continue
		}
		var drop []File
		if ref.Quant == "" && ref.File == "" {
			drop = s.Files
		} else {
			paths := make([]string, len(s.Files))
			for i, f := range s.Files {
				paths[i] = f.Path
			}
			sel, err := SelectFiles(paths, Selection{Quant: ref.Quant, File: ref.File})
			if err != nil {
				continue
			}
			for _, p := range sel {
				if p == "README.md" && ref.File != "README.md" {
					continue // the card stays with the other files
				}
				f, _ := s.File(p)
				drop = append(drop, f)
			}
		}
		for _, f := range drop {
			if !within(s.Dir, f.LocalPath) {
				continue
			}
			if err := os.Remove(f.LocalPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, err
			}
			res.Files++
			if f.BlobPath != f.LocalPath {
				candidates[f.BlobPath] = true
			}
			pruneEmptyDirs(s.Dir, filepath.Dir(f.LocalPath))
		}
		if len(drop) > 0 && isEmptyDir(s.Dir) {
			os.Remove(s.Dir)
			res.Snapshots++
			emptied[s.Commit] = true
		}
	}
	if res.Files == 0 {
		return res, fmt.Errorf("nothing cached matches %s: %w", ref.String(), ErrNotFound)
	}
	// Drop refs to removed snapshots.
	for commit, names := range c.refs(ref.Repo) {
		if emptied[commit] {
			for _, n := range names {
				os.Remove(c.refPath(ref.Repo, n))
			}
		}
	}
	// Delete candidate blobs nothing links to any more.
	still, err := c.Repo(ref.Repo)
	if err != nil {
		return res, err
	}
	used := map[string]bool{}
	for _, s := range still.Snapshots {
		for _, f := range s.Files {
			used[f.BlobPath] = true
		}
	}
	blobs := c.blobsDir(ref.Repo)
	for b := range candidates {
		if used[b] || filepath.Dir(b) != blobs {
			continue
		}
		if st, err := os.Lstat(b); err == nil && st.Mode().IsRegular() {
			if os.Remove(b) == nil {
				res.Blobs++
				res.Bytes += st.Size()
			}
		}
	}
	if len(still.Snapshots) == 0 {
		if entries, _ := os.ReadDir(blobs); len(entries) == 0 {
			os.RemoveAll(dir)
		}
	}
	return res, nil
}

func isEmptyDir(d string) bool {
	ents, err := os.ReadDir(d)
	return err == nil && len(ents) == 0
}

// pruneEmptyDirs removes dir and its parents up to (not including) root
// while they are empty.
func pruneEmptyDirs(root, dir string) {
	for dir != root && within(root, dir) && strings.HasPrefix(dir, root) {
		if !isEmptyDir(dir) || os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func dirSize(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
