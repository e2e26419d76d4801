package hub

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// PullOptions adjusts what Pull fetches beyond what the Ref names.
type PullOptions struct {
	Include []string // fnmatch globs; when set they replace the default choice of files
	Exclude []string // fnmatch globs of files to leave out
	// Convertible, when not nil, lets a ref's quantization name the type
	// a safetensors repo is converted to (see Selection.Convertible).
	Convertible func(quant string) bool
	// Check, when not nil and the default selection is a safetensors
	// checkpoint (no Include, no file named, config.json among the files),
	// is called before any weights file is fetched, with the snapshot
	// directory holding the selected files that are not weights
	// (config.json, the tokenizer's files, ...); its error stops the pull.
	// A converter checks there that it can convert the model before
	// gigabytes are downloaded.
	Check func(dir string) error
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Pull makes the files ref names available in the cache and returns their
// snapshot: the repo info at ref's revision, the files chosen by
// SelectFiles, each downloaded unless its blob is cached, linked into
// snapshots/{commit}/, and refs/{revision} updated.
//
// When offline (Client.Offline, or the endpoint cannot be reached) the
// snapshot is resolved from the cache, failing with ErrOffline if it is not
// there.
func (c *Client) Pull(ctx context.Context, ref Ref, opts PullOptions) (*Snapshot, error) {
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	sel := Selection{Quant: ref.Quant, File: ref.File, Include: opts.Include, Exclude: opts.Exclude, Convertible: opts.Convertible}
	if c.Offline {
		snap, err := c.Cache.Resolve(ref, sel)
		if err != nil {
			return nil, fmt.Errorf("hub: offline (HF_HUB_OFFLINE): %w", err)
		}
		return snap, nil
	}
	info, err := c.RepoInfo(ctx, ref.Repo, ref.rev())
	if err != nil {
		if isNetworkError(err) && ctx.Err() == nil {
			snap, cerr := c.Cache.Resolve(ref, sel)
			if cerr == nil {
				c.logger().Warn("hub: cannot reach the Hub; using the cached snapshot", "model", ref.String(), "commit", snap.Commit)
				return snap, nil
			}
			return nil, fmt.Errorf("hub: cannot reach %s (%v), and %w", c.Endpoint, err, cerr)
		}
		return nil, c.explain(ref, err)
	}
	commit := info.SHA
	byPath := make(map[string]Sibling, len(info.Siblings))
	paths := make([]string, 0, len(info.Siblings))
	for _, s := range info.Siblings {
		byPath[s.Path] = s
		paths = append(paths, s.Path)
	}
	files, err := SelectFiles(paths, sel)
	if err != nil {
		if ref.File != "" && errors.Is(err, ErrNotFound) {
			c.Cache.markNoExist(ref.Repo, commit, ref.File)
		}
		return nil, fmt.Errorf("hub: %s@%s: %w", ref.Repo, ref.rev(), err)
	}
	if err := c.checkSpace(ref.Repo, files, byPath); err != nil {
		return nil, fmt.Errorf("hub: %s: %w", ref.Repo, err)
	}

	var received atomic.Int64
	sem := newConnSem(c.concurrency())
	prog := c.Progress
	if prog == nil {
		prog = nopProgress{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		etags    = make([]string, len(files))
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	// fetch puts the files whose indexes are idx in the cache.
	fetch := func(idx []int) error {
		var wg sync.WaitGroup
		for _, i := range idx {
			file := files[i]
			if err := sem.acquire(ctx); err != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer sem.release()
				etag, err := c.pullFile(ctx, ref.Repo, commit, file, byPath[file], sem, prog, &received)
				if err != nil {
					if errors.Is(err, ErrNotFound) {
						c.Cache.markNoExist(ref.Repo, commit, file)
					}
					fail(fmt.Errorf("hub: %s: %s: %w", ref.Repo, file, err))
					return
				}
				etags[i] = etag
			}()
		}
		wg.Wait()
		if firstErr == nil && ctx.Err() != nil {
			firstErr = ctx.Err()
		}
		if firstErr != nil {
			return c.explain(ref, firstErr)
		}
		return nil
	}
	// Only for the default choice of a safetensors checkpoint's files: a
	// selection the user made may leave out what the check reads.
	check := opts.Check
	if len(opts.Include) > 0 || ref.File != "" || !slices.Contains(files, "config.json") ||
		!slices.ContainsFunc(files, func(f string) bool { return strings.HasSuffix(f, ".safetensors") }) {
		check = nil
	}
	var small, weights []int
	for i, f := range files {
		if check != nil && isWeights(f) {
			weights = append(weights, i)
		} else {
			small = append(small, i)
		}
	}
	if err := fetch(small); err != nil {
		return nil, err
	}
	if check != nil {
		for _, i := range small {
			if _, err := c.Cache.linkSnapshot(ref.Repo, commit, files[i], etags[i]); err != nil {
				return nil, fmt.Errorf("hub: %s: %s: %w", ref.Repo, files[i], err)
			}
		}
		if err := check(c.Cache.SnapshotDir(ref.Repo, commit)); err != nil {
			return nil, fmt.Errorf("hub: %s: %w", ref.Repo, err)
		}
		if err := fetch(weights); err != nil {
			return nil, err
		}
	}
	snap := &Snapshot{Repo: ref.Repo, Revision: ref.rev(), Commit: commit, Dir: c.Cache.SnapshotDir(ref.Repo, commit), Downloaded: received.Load()}
	for i, file := range files {
		local, err := c.Cache.linkSnapshot(ref.Repo, commit, file, etags[i])
		if err != nil {
			return nil, fmt.Errorf("hub: %s: %s: %w", ref.Repo, file, err)
		}
		f := File{Path: file, LocalPath: local, BlobPath: c.Cache.BlobPath(ref.Repo, etags[i]), ETag: etags[i]}
		if st, err := os.Stat(f.BlobPath); err == nil {
			f.Size, f.LastModified = st.Size(), st.ModTime()
		}
		snap.Files = append(snap.Files, f)
	}
	if err := c.Cache.writeRef(ref.Repo, ref.rev(), commit); err != nil {
		return nil, fmt.Errorf("hub: %s: ref %s: %w", ref.Repo, ref.rev(), err)
	}
	return snap, nil
}

// isWeights reports whether a repo file holds weights (as opposed to
// configuration, tokenizer and card files).
func isWeights(p string) bool {
	low := strings.ToLower(p)
	for _, ext := range []string{".safetensors", ".gguf", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx", ".ckpt"} {
		if strings.HasSuffix(low, ext) {
			return true
		}
	}
	return false
}

// pullFile puts one file's blob in the cache and returns its ETag.
func (c *Client) pullFile(ctx context.Context, repo, commit, file string, sib Sibling, sem *connSem, prog Progress, received *atomic.Int64) (string, error) {
	if e := sib.ETag(); e != "" && fileExists(c.Cache.BlobPath(repo, e)) {
		return e, nil // cached: no request at all
	}
	meta, err := c.headFile(ctx, repo, commit, file)
	if err != nil {
		return "", err
	}
	if meta.commit != "" && meta.commit != commit {
		return "", fmt.Errorf("server resolved commit %s to %s", commit, meta.commit)
	}
	job := blobJob{repo: repo, file: file, etag: meta.etag, size: meta.size, location: meta.location}
	switch {
	case sib.LFS != nil && sha256RE.MatchString(sib.LFS.SHA256):
		job.sha256 = sib.LFS.SHA256
		if meta.linked && meta.etag != job.sha256 {
			return "", fmt.Errorf("server ETag %s differs from the LFS sha256 %s: %w", meta.etag, job.sha256, ErrChecksum)
		}
	case meta.linked && sha256RE.MatchString(meta.etag):
		job.sha256 = meta.etag
	case sib.BlobID != "" && sib.BlobID == meta.etag:
		job.gitOID = meta.etag
	}
	if job.size < 0 && sib.Size > 0 {
		job.size = sib.Size
	}
	if sib.LFS != nil && sib.LFS.Size > 0 && job.size != sib.LFS.Size {
		return "", fmt.Errorf("server size %d differs from the LFS size %d: %w", job.size, sib.LFS.Size, ErrChecksum)
	}
	if err := c.fetchBlob(ctx, job, sem, prog, received); err != nil {
		return "", err
	}
	return meta.etag, nil
}

// checkSpace fails with ErrDiskFull when the blobs still to fetch need more
// than the free space of the cache's file system.
func (c *Client) checkSpace(repo string, files []string, byPath map[string]Sibling) error {
	var need int64
	seen := map[string]bool{}
	for _, f := range files {
		s := byPath[f]
		e := s.ETag()
		if e != "" {
			if seen[e] || fileExists(c.Cache.BlobPath(repo, e)) {
				continue
			}
			seen[e] = true
			if st, err := os.Stat(c.Cache.BlobPath(repo, e) + ".incomplete"); err == nil {
				need -= st.Size()
			}
		}
		need += s.Size
	}
	if need <= 0 {
		return nil
	}
	fs := c.freeSpace
	if fs == nil {
		fs = freeSpace
	}
	free, err := fs(c.Cache.Dir)
	if err != nil || free < 0 {
		return nil // unknown: let the writes tell
	}
	if need > free {
		return fmt.Errorf("%w: need %s, %s free in %s", ErrDiskFull, FormatBytes(need), FormatBytes(free), c.Cache.Dir)
	}
	return nil
}

// explain adds what a user can do about gated, private and missing repos.
func (c *Client) explain(ref Ref, err error) error {
	switch {
	case errors.Is(err, ErrGated) && c.Token != "":
		return fmt.Errorf("%w\n%s is gated and the token in use has no access to it: accept its licence at %s/%s while logged in as the token's account",
			err, ref.Repo, c.Endpoint, ref.Repo)
	case errors.Is(err, ErrGated):
		return fmt.Errorf("%w\n%s is gated: accept its licence at %s/%s, then set HF_TOKEN (or write a token to $HF_HOME/token) with an account that has access",
			err, ref.Repo, c.Endpoint, ref.Repo)
	case errors.Is(err, ErrUnauthorized):
		hint := "set HF_TOKEN to a token with access to it"
		if c.Token != "" {
			hint = "the token in use has no access to it; check it, and accept the licence on the model page if the repo is gated"
		}
		return fmt.Errorf("%w\n%s is private or gated: %s (%s/%s)", err, ref.Repo, hint, c.Endpoint, ref.Repo)
	case errors.Is(err, ErrNotFound) && c.Token == "":
		var he *HTTPError
		if errors.As(err, &he) && he.Code == "RepoNotFound" {
			return fmt.Errorf("%w\n(if %s is private, set HF_TOKEN)", err, ref.Repo)
		}
	}
	return err
}

// FormatBytes formats n bytes as "1.2 GB" (powers of 1000, like the Hub).
func FormatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
