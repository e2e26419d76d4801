package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Resolve finds, without any network access, the cached files that ref and
// sel name: the commit from refs/{revision} (or the revision itself when it
// is a commit sha), then SelectFiles over the files of that snapshot. It
// fails with ErrOffline, naming what is missing, when the repo, the
// revision or the files are not cached, and with ErrNotFound when the cache
// records (.no_exist) that the file does not exist in the repo.
func (c *Cache) Resolve(ref Ref, sel Selection) (*Snapshot, error) {
	if err := ref.Validate(); err != nil {
		return nil, err
	}
	if sel.Quant == "" {
		sel.Quant = ref.Quant
	}
	if sel.File == "" {
		sel.File = ref.File
	}
	rev := ref.rev()
	if _, err := os.Stat(c.RepoDir(ref.Repo)); err != nil {
		return nil, fmt.Errorf("%s is not in the cache %s: %w", ref.Repo, c.Dir, ErrOffline)
	}
	commit, err := c.ReadRef(ref.Repo, rev)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("revision %s of %s is not in the cache (no refs/%s): %w", rev, ref.Repo, rev, ErrOffline)
		}
		return nil, err
	}
	entries, err := c.snapshotEntries(ref.Repo, commit)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshot %s of %s is not in the cache: %w", commit, ref.Repo, ErrOffline)
		}
		return nil, err
	}
	byPath := map[string]snapshotEntry{}
	paths := make([]string, 0, len(entries))
	for _, e := range entries {
		byPath[e.path] = e
		paths = append(paths, e.path)
	}
	if sel.File != "" && c.noExist(ref.Repo, commit, sel.File) {
		return nil, fmt.Errorf("%s has no file %s at %s (cached answer): %w", ref.Repo, sel.File, commit[:12], ErrNotFound)
	}
	files, err := SelectFiles(paths, sel)
	if err != nil {
		return nil, fmt.Errorf("%s@%s (%s) in the cache: %v: %w", ref.Repo, rev, commit[:12], err, ErrOffline)
	}
	if missing := missingShards(byPath, files); len(missing) > 0 {
		return nil, fmt.Errorf("%s@%s in the cache lacks %s: %w", ref.Repo, rev, strings.Join(missing, ", "), ErrOffline)
	}
	snap := &Snapshot{Repo: ref.Repo, Revision: rev, Commit: commit, Dir: c.SnapshotDir(ref.Repo, commit)}
	for _, f := range files {
		snap.Files = append(snap.Files, fileFromEntry(byPath[f]))
	}
	return snap, nil
}

// missingShards lists the safetensors shards that a selected index names but
// the snapshot lacks.
func missingShards(have map[string]snapshotEntry, files []string) []string {
	var missing []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".safetensors.index.json") {
			continue
		}
		b, err := os.ReadFile(have[f].blob)
		if err != nil {
			continue
		}
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if json.Unmarshal(b, &idx) != nil {
			continue
		}
		dir := filepath.ToSlash(filepath.Dir(filepath.FromSlash(f)))
		seen := map[string]bool{}
		for _, shard := range idx.WeightMap {
			p := shard
			if dir != "." {
				p = dir + "/" + shard
			}
			if _, ok := have[p]; !ok && !seen[p] {
				seen[p] = true
				missing = append(missing, p)
			}
		}
	}
	return missing
}
