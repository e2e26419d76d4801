package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
)

// fileMeta is what the Hub's resolve endpoint says about a file.
type fileMeta struct {
	etag     string // normalized X-Linked-Etag, else ETag
	linked   bool   // the ETag came from X-Linked-Etag: an LFS file, etag is its sha256
	size     int64  // X-Linked-Size, else Content-Length; -1 if unknown
	commit   string // X-Repo-Commit
	location string // where to GET the content (the CDN, or the resolve URL)
}

// headFile asks the Hub about a file as huggingface_hub does: a HEAD on the
// resolve URL following only same-host redirects, reading the Hub's headers
// before any redirect to a CDN.
func (c *Client) headFile(ctx context.Context, repo, rev, file string) (fileMeta, error) {
	u := c.fileURL(repo, rev, file)
	var m fileMeta
	err := c.retry(ctx, func(int) error {
		resp, _, err := c.follow(ctx, http.MethodHead, u, nil, false)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 400 {
			return statusError(resp)
		}
		resp.Body.Close()
		h := resp.Header
		m = fileMeta{size: -1, location: resp.Request.URL.String(), commit: h.Get("X-Repo-Commit")}
		if resp.StatusCode >= 300 {
			loc, err := resp.Request.URL.Parse(h.Get("Location"))
			if err != nil {
				return fmt.Errorf("bad redirect: %w", err)
			}
			m.location = loc.String()
		}
		if e := h.Get("X-Linked-Etag"); e != "" {
			m.etag, m.linked = normalizeETag(e), true
		} else {
			m.etag = normalizeETag(h.Get("ETag"))
		}
		if s := h.Get("X-Linked-Size"); s != "" {
			m.size, _ = strconv.ParseInt(s, 10, 64)
		} else if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 {
			m.size = resp.ContentLength
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	if m.etag == "" {
		return m, fmt.Errorf("server sent no ETag for %s", file)
	}
	if err := validateETag(m.etag); err != nil {
		return m, err
	}
	if m.commit != "" {
		if err := validateCommit(m.commit); err != nil {
			return m, err
		}
	}
	return m, nil
}

// blobJob is one blob to put in the cache.
type blobJob struct {
	repo, file string
	etag       string
	size       int64 // -1 if unknown
	location   string
	sha256     string // expected sha256 of the content, "" if unknown
	gitOID     string // expected git blob id, "" if unknown
}

// fetchBlob downloads a blob into the cache unless it is there: under the
// blob's lock, into blobs/{etag}.incomplete (resuming what an earlier run
// left), hashing as it goes; verified, then renamed into place. An
// interrupted download leaves the .incomplete file for the next run; a
// corrupt one is removed.
func (c *Client) fetchBlob(ctx context.Context, job blobJob, sem *connSem, prog Progress, received *atomic.Int64) error {
	blob := c.Cache.BlobPath(job.repo, job.etag)
	if fileExists(blob) {
		return nil
	}
	unlock, err := lockFile(ctx, c.Cache.lockPath(job.repo, job.etag))
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer unlock()
	if fileExists(blob) { // another process fetched it while we waited
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		return err
	}
	inc := blob + ".incomplete"
	resumed, err := c.downloadTo(ctx, job, inc, sem, prog, received)
	if err != nil && resumed && errors.Is(err, ErrChecksum) {
		// The partial file left by an earlier run was bad: start over once.
		c.logger().Warn("hub: resumed download failed verification; downloading again", "file", job.file, "err", err)
		_, err = c.downloadTo(ctx, job, inc, sem, prog, received)
	}
	if err != nil {
		return err
	}
	return os.Rename(inc, blob)
}

// downloadTo fetches job into the file inc, resuming from what it holds,
// and verifies it. It reports whether it resumed. A file that fails
// verification is removed.
func (c *Client) downloadTo(ctx context.Context, job blobJob, inc string, sem *connSem, prog Progress, received *atomic.Int64) (resumed bool, err error) {
	f, err := os.OpenFile(inc, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return false, err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	off := st.Size()
	if job.size >= 0 && off > job.size {
		if err := f.Truncate(0); err != nil {
			return false, err
		}
		off = 0
	}
	var hashes []hash.Hash
	var sum256, sumGit hash.Hash
	if job.sha256 != "" {
		sum256 = sha256.New()
		hashes = append(hashes, sum256)
	}
	if job.gitOID != "" && job.size >= 0 {
		sumGit = sha1.New()
		fmt.Fprintf(sumGit, "blob %d\x00", job.size)
		hashes = append(hashes, sumGit)
	}
	if off > 0 && len(hashes) > 0 {
		w := io.MultiWriter(hashWriters(hashes)...)
		if _, err := io.Copy(w, io.NewSectionReader(f, 0, off)); err != nil {
			return false, err
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, err
	}
	fp := prog.Start(job.file, job.size, off)
	written := off
	// Hash in a goroutine of its own, beside the writes.
	type hashJob struct {
		bp *[]byte
		n  int
	}
	hch := make(chan hashJob, 16)
	hdone := make(chan struct{})
	go func() {
		defer close(hdone)
		for j := range hch {
			b := (*j.bp)[:j.n]
			for _, h := range hashes {
				h.Write(b)
			}
			piecePool.Put(j.bp)
		}
	}()
	err = c.stream(ctx, job.location, off, job.size, sem, func(bp *[]byte, n int) error {
		if _, err := f.Write((*bp)[:n]); err != nil {
			piecePool.Put(bp)
			if isNoSpace(err) {
				return fmt.Errorf("%w: %v", ErrDiskFull, err)
			}
			return err
		}
		written += int64(n)
		fp.Advance(int64(n))
		hch <- hashJob{bp, n}
		return nil
	}, received)
	close(hch)
	<-hdone
	if err == nil {
		err = verify(job, written, sum256, sumGit)
		if err != nil {
			f.Close()
			f = nil
			os.Remove(inc)
		}
	}
	fp.Done(err)
	if err != nil {
		return off > 0, err
	}
	if err := f.Close(); err != nil {
		f = nil
		return off > 0, err
	}
	f = nil
	return off > 0, nil
}

func verify(job blobJob, written int64, sum256, sumGit hash.Hash) error {
	if job.size >= 0 && written != job.size {
		return fmt.Errorf("got %d bytes, want %d: %w", written, job.size, ErrChecksum)
	}
	if sum256 != nil {
		if got := hex.EncodeToString(sum256.Sum(nil)); got != job.sha256 {
			return fmt.Errorf("sha256 %s, want %s: %w", got, job.sha256, ErrChecksum)
		}
	}
	if sumGit != nil {
		if got := hex.EncodeToString(sumGit.Sum(nil)); got != job.gitOID {
			return fmt.Errorf("git blob id %s, want %s: %w", got, job.gitOID, ErrChecksum)
		}
	}
	return nil
}

func hashWriters(hs []hash.Hash) []io.Writer {
	ws := make([]io.Writer, len(hs))
	for i, h := range hs {
		ws[i] = h
	}
	return ws
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
