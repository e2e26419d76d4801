package hub

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CachedRepo is a repo found in the cache.
type CachedRepo struct {
	Repo       string
	Dir        string
	Snapshots  []*Snapshot // newest first
	SizeOnDisk int64       // all blobs of the repo, referenced or not
}

// List returns the model repos in the cache, sorted by id, each with its
// snapshots (the files present in each, and the refs pointing at it). It
// reads caches written by huggingface_hub as well as ours.
func (c *Cache) List() ([]*CachedRepo, error) {
	ents, err := os.ReadDir(c.Dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*CachedRepo
	for _, e := range ents {
		repo, ok := repoFromFolder(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		r, err := c.Repo(repo)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Repo < out[j].Repo })
	return out, nil
}

// Repo describes one cached repo.
func (c *Cache) Repo(repo string) (*CachedRepo, error) {
	if err := ValidateRepoID(repo); err != nil {
		return nil, err
	}
	dir := c.RepoDir(repo)
	r := &CachedRepo{Repo: repo, Dir: dir}
	refs := c.refs(repo)
	snaps, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, s := range snaps {
		commit := s.Name()
		if !s.IsDir() || validateCommit(commit) != nil {
			continue
		}
		entries, err := c.snapshotEntries(repo, commit)
		if err != nil {
			return nil, err
		}
		snap := &Snapshot{Repo: repo, Commit: commit, Dir: c.SnapshotDir(repo, commit), Refs: refs[commit]}
		for _, e := range entries {
			snap.Files = append(snap.Files, fileFromEntry(e))
		}
		r.Snapshots = append(r.Snapshots, snap)
	}
	sort.SliceStable(r.Snapshots, func(i, j int) bool {
		return r.Snapshots[i].LastModified().After(r.Snapshots[j].LastModified())
	})
	if blobs, err := os.ReadDir(filepath.Join(dir, "blobs")); err == nil {
		for _, b := range blobs {
			if info, err := b.Info(); err == nil && info.Mode().IsRegular() && !strings.HasSuffix(b.Name(), ".incomplete") {
				r.SizeOnDisk += info.Size()
			}
		}
	}
	return r, nil
}

// refs maps each commit to the refs (branch, tag, "refs/pr/1") pointing at it.
func (c *Cache) refs(repo string) map[string][]string {
	root := filepath.Join(c.RepoDir(repo), "refs")
	out := map[string][]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		name := filepath.ToSlash(rel)
		if strings.Contains(name, ".tmp-") {
			return nil
		}
		if commit, err := c.ReadRef(repo, name); err == nil {
			out[commit] = append(out[commit], name)
		}
		return nil
	})
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}
