package hubserver

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/llm-go/llm/hub"
)

// LoadRepoDir serves the files below dir (hidden files and folders left out,
// symlinks followed) as repo id, hashing each.
func LoadRepoDir(id, dir string) (*Repo, error) {
	if err := hub.ValidateRepoID(id); err != nil {
		return nil, err
	}
	var files []*File
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows symlinks
		if err != nil || !st.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if hub.ValidatePath(name) != nil {
			return nil
		}
		f, err := DiskFile(name, p)
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hubserver: %s: %w", dir, err)
	}
	return NewRepo(id, files...), nil
}

// LoadTree serves every folder root/org/name as repo "org/name".
func LoadTree(root string) ([]*Repo, error) {
	orgs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var repos []*Repo
	for _, org := range orgs {
		if !isDir(root, org) || strings.HasPrefix(org.Name(), ".") {
			continue
		}
		names, err := os.ReadDir(filepath.Join(root, org.Name()))
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if !isDir(filepath.Join(root, org.Name()), name) || strings.HasPrefix(name.Name(), ".") {
				continue
			}
			id := org.Name() + "/" + name.Name()
			if hub.ValidateRepoID(id) != nil {
				continue
			}
			r, err := LoadRepoDir(id, filepath.Join(root, org.Name(), name.Name()))
			if err != nil {
				return nil, err
			}
			repos = append(repos, r)
		}
	}
	return repos, nil
}

func isDir(parent string, d fs.DirEntry) bool {
	if d.IsDir() {
		return true
	}
	st, err := os.Stat(filepath.Join(parent, d.Name()))
	return err == nil && st.IsDir()
}

// LoadCache serves the repos of a Hugging Face cache folder as they are
// cached: each snapshot as its commit, each ref as a branch, blobs by their
// names (a 64-digit sha256 name is an LFS file). Nothing is hashed.
func LoadCache(dir string) ([]*Repo, error) {
	c, err := hub.OpenCache(dir)
	if err != nil {
		return nil, err
	}
	cached, err := c.List()
	if err != nil {
		return nil, err
	}
	var repos []*Repo
	for _, cr := range cached {
		r := &Repo{ID: cr.Repo, Commits: map[string]*Commit{}, Refs: map[string]string{}}
		for _, s := range cr.Snapshots {
			cm := &Commit{SHA: s.Commit, LastModified: s.LastModified().UTC()}
			for _, f := range s.Files {
				file := &File{Path: f.Path, Size: f.Size, Source: f.BlobPath, ModTime: f.LastModified}
				switch {
				case isHex(f.ETag, 64):
					file.LFS, file.SHA256 = true, f.ETag
					file.GitOID = GitBlobID([]byte(LFSPointer(f.ETag, f.Size)))
				case isHex(f.ETag, 40):
					file.GitOID = f.ETag
				default:
					df, err := DiskFile(f.Path, f.BlobPath)
					if err != nil {
						return nil, err
					}
					file = df
				}
				cm.Files = append(cm.Files, file)
			}
			sort.Slice(cm.Files, func(i, j int) bool { return cm.Files[i].Path < cm.Files[j].Path })
			r.Commits[s.Commit] = cm
			for _, ref := range s.Refs {
				r.Refs[ref] = s.Commit
			}
		}
		if _, ok := r.Refs["main"]; !ok && len(cr.Snapshots) > 0 {
			r.Refs["main"] = cr.Snapshots[0].Commit // newest
		}
		if len(r.Commits) > 0 {
			repos = append(repos, r)
		}
	}
	return repos, nil
}

// Load serves dir as a cache when it holds models--* folders, else as a
// tree of org/name folders.
func Load(dir string) ([]*Repo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "models--") {
			return LoadCache(dir)
		}
	}
	return LoadTree(dir)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
