package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Cache is a Hugging Face hub cache directory ($HF_HUB_CACHE), shared with
// Python's huggingface_hub. Its methods never follow a symlink out of a
// repo's blobs folder.
type Cache struct {
	Dir string // absolute
}

// OpenCache returns the cache rooted at dir. The directory need not exist
// yet; it is created on the first download.
func OpenCache(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("hub: empty cache directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("hub: cache %s: %w", dir, err)
	}
	return &Cache{Dir: abs}, nil
}

// RepoFolderName is the folder of a model repo in the cache:
// "models--org--name".
func RepoFolderName(repo string) string {
	return "models--" + strings.ReplaceAll(repo, "/", "--")
}

// repoFromFolder reverses RepoFolderName; ok is false for other folders.
func repoFromFolder(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "models--")
	if !ok {
		return "", false
	}
	repo := strings.Replace(rest, "--", "/", 1)
	if ValidateRepoID(repo) != nil {
		return "", false
	}
	return repo, true
}

// RepoDir returns the cache folder of repo.
func (c *Cache) RepoDir(repo string) string {
	return filepath.Join(c.Dir, RepoFolderName(repo))
}

func (c *Cache) blobsDir(repo string) string { return filepath.Join(c.RepoDir(repo), "blobs") }

// BlobPath returns where the blob with this ETag is stored.
func (c *Cache) BlobPath(repo, etag string) string {
	return filepath.Join(c.blobsDir(repo), etag)
}

// SnapshotDir returns the folder of a commit's files.
func (c *Cache) SnapshotDir(repo, commit string) string {
	return filepath.Join(c.RepoDir(repo), "snapshots", commit)
}

func (c *Cache) lockPath(repo, etag string) string {
	return filepath.Join(c.Dir, ".locks", RepoFolderName(repo), etag+".lock")
}

func (c *Cache) refPath(repo, rev string) string {
	return filepath.Join(c.RepoDir(repo), "refs", filepath.FromSlash(rev))
}

func (c *Cache) noExistPath(repo, commit, file string) string {
	return filepath.Join(c.RepoDir(repo), ".no_exist", commit, filepath.FromSlash(file))
}

// ReadRef returns the commit a revision points to in the cache. A full
// commit sha is returned as is.
func (c *Cache) ReadRef(repo, rev string) (string, error) {
	if IsCommit(rev) {
		return rev, nil
	}
	if err := ValidateRevision(rev); err != nil {
		return "", err
	}
	b, err := os.ReadFile(c.refPath(repo, rev))
	if err != nil {
		return "", err
	}
	commit := strings.TrimSpace(string(b))
	if err := validateCommit(commit); err != nil {
		return "", fmt.Errorf("ref %s of %s: %w", rev, repo, err)
	}
	return commit, nil
}

// writeRef records that rev points to commit: refs/{rev} holds the sha with
// no newline, as huggingface_hub writes it. Nothing is written for a commit
// sha, or when the ref is already right.
func (c *Cache) writeRef(repo, rev, commit string) error {
	if rev == commit {
		return nil
	}
	if cur, err := c.ReadRef(repo, rev); err == nil && cur == commit {
		return nil
	}
	return writeFileAtomic(c.refPath(repo, rev), []byte(commit))
}

// markNoExist records that file does not exist at commit, as an empty file
// under .no_exist/, which huggingface_hub also reads.
func (c *Cache) markNoExist(repo, commit, file string) {
	if validateCommit(commit) != nil || ValidatePath(file) != nil {
		return
	}
	p := c.noExistPath(repo, commit, file)
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}

// noExist reports whether file is recorded as missing at commit.
func (c *Cache) noExist(repo, commit, file string) bool {
	if validateCommit(commit) != nil || ValidatePath(file) != nil {
		return false
	}
	_, err := os.Lstat(c.noExistPath(repo, commit, file))
	return err == nil
}

// linkSnapshot points snapshots/{commit}/{file} at blobs/{etag} with a
// relative symlink ("../../blobs/{etag}", one more "../" per folder level),
// replacing whatever was there.
func (c *Cache) linkSnapshot(repo, commit, file, etag string) (string, error) {
	if err := validateCommit(commit); err != nil {
		return "", err
	}
	if err := ValidatePath(file); err != nil {
		return "", err
	}
	if err := validateETag(etag); err != nil {
		return "", err
	}
	snap := c.SnapshotDir(repo, commit)
	dst := filepath.Join(snap, filepath.FromSlash(file))
	if err := mkdirInside(snap, filepath.Dir(dst)); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(filepath.Dir(dst), c.BlobPath(repo, etag))
	if err != nil {
		return "", err
	}
	if cur, err := os.Readlink(dst); err == nil && cur == rel {
		return dst, nil
	}
	tmp := dst + ".tmp-" + randSuffix()
	if err := os.Symlink(rel, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return dst, nil
}

// mkdirInside creates dir (below root) and checks that no component of it
// is a symlink leading out of root.
func mkdirInside(root, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if !within(realRoot, realDir) {
		return fmt.Errorf("%s leads out of %s: %w", dir, root, ErrInvalidName)
	}
	return nil
}

// within reports whether p is root or below it (both cleaned, absolute).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// snapshotEntry is one file of a cached snapshot.
type snapshotEntry struct {
	path  string // repo path, '/'-separated
	local string // snapshots/{commit}/{path}
	blob  string // the blob it links to; local itself for a plain file
	etag  string // blob file name; "" for a plain file
	info  fs.FileInfo
}

// snapshotEntries lists the files of a cached snapshot whose content is
// present. Symlinks must point into the repo's blobs folder; others are
// skipped, as are dangling links.
func (c *Cache) snapshotEntries(repo, commit string) ([]snapshotEntry, error) {
	snap := c.SnapshotDir(repo, commit)
	blobs := c.blobsDir(repo)
	var out []snapshotEntry
	err := filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(snap, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if ValidatePath(name) != nil || strings.Contains(path.Base(name), ".tmp-") {
			return nil
		}
		e := snapshotEntry{path: name, local: p, blob: p}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return nil
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(p), target)
			}
			target = filepath.Clean(target)
			if filepath.Dir(target) != blobs {
				return nil // points outside blobs/: never follow
			}
			e.blob, e.etag = target, filepath.Base(target)
		} else if !d.Type().IsRegular() {
			return nil
		}
		info, err := os.Lstat(e.blob)
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		e.info = info
		out = append(out, e)
		return nil
	})
	return out, err
}
