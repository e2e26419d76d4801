package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RepoInfo is what the Hub's /api/models/{repo}/revision/{rev} returns (the
// fields this package uses).
type RepoInfo struct {
	ID           string         `json:"id"`
	SHA          string         `json:"sha"` // the commit the revision resolved to
	LastModified time.Time      `json:"lastModified"`
	Private      bool           `json:"private"`
	Gated        Gated          `json:"gated"`
	Disabled     bool           `json:"disabled"`
	Tags         []string       `json:"tags,omitempty"`
	PipelineTag  string         `json:"pipeline_tag,omitempty"`
	LibraryName  string         `json:"library_name,omitempty"`
	CardData     map[string]any `json:"cardData,omitempty"`
	Siblings     []Sibling      `json:"siblings"`
}

// Sibling is one file of a repo. Size, BlobID and LFS are filled when the
// info was asked for with blobs=true, as RepoInfo does.
type Sibling struct {
	Path   string   `json:"rfilename"`
	BlobID string   `json:"blobId,omitempty"` // git blob sha1 (of the LFS pointer for LFS files)
	Size   int64    `json:"size,omitempty"`
	LFS    *LFSInfo `json:"lfs,omitempty"`
}

// LFSInfo describes a file stored with git LFS: its content's sha256, which is
// also its ETag and blob name.
type LFSInfo struct {
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	PointerSize int64  `json:"pointerSize,omitempty"`
}

// ETag returns the ETag the Hub serves the file with, which names its blob:
// the sha256 for LFS files, the git blob id otherwise ("" when unknown).
func (s Sibling) ETag() string {
	if s.LFS != nil && s.LFS.SHA256 != "" {
		return s.LFS.SHA256
	}
	return s.BlobID
}

// Gated is a repo's gating mode: "" when not gated, else "auto" or "manual"
// (the API sends false or a string).
type Gated string

// UnmarshalJSON accepts false, true or a string.
func (g *Gated) UnmarshalJSON(b []byte) error {
	switch s := strings.TrimSpace(string(b)); s {
	case "false", "null":
		*g = ""
		return nil
	case "true":
		*g = "true"
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*g = Gated(s)
	return nil
}

// MarshalJSON writes false when not gated, as the Hub does.
func (g Gated) MarshalJSON() ([]byte, error) {
	if g == "" {
		return []byte("false"), nil
	}
	return json.Marshal(string(g))
}

// RepoInfo fetches a model repo's info at a revision ("" for main), with file
// sizes and hashes. It checks what the server sent: a 40-digit commit sha and
// safe file paths.
func (c *Client) RepoInfo(ctx context.Context, repo, rev string) (*RepoInfo, error) {
	if rev == "" {
		rev = DefaultRevision
	}
	if err := ValidateRepoID(repo); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	if err := ValidateRevision(rev); err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	u := fmt.Sprintf("%s/api/models/%s/revision/%s?blobs=true", c.Endpoint, repo, url.PathEscape(rev))
	var info RepoInfo
	err := c.retry(ctx, func(attempt int) error {
		resp, _, err := c.follow(ctx, http.MethodGet, u, nil, true)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		defer resp.Body.Close()
		info = RepoInfo{}
		return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&info)
	})
	if err != nil {
		return nil, fmt.Errorf("hub: repo %s@%s: %w", repo, rev, err)
	}
	if err := validateCommit(info.SHA); err != nil {
		return nil, fmt.Errorf("hub: repo %s@%s: server sent %w", repo, rev, err)
	}
	for _, s := range info.Siblings {
		if err := ValidatePath(s.Path); err != nil {
			return nil, fmt.Errorf("hub: repo %s: server sent %w", repo, err)
		}
		if e := s.ETag(); e != "" {
			if err := validateETag(e); err != nil {
				return nil, fmt.Errorf("hub: repo %s: %s: server sent %w", repo, s.Path, err)
			}
		}
	}
	return &info, nil
}

// retry runs f until it succeeds, fails with an error not worth retrying, or
// has failed MaxRetries+1 times, waiting with backoff in between.
func (c *Client) retry(ctx context.Context, f func(attempt int) error) error {
	for attempt := 0; ; attempt++ {
		err := f(attempt)
		if err == nil || !retryable(ctx, err) || attempt >= c.maxRetries() {
			return err
		}
		c.logger().Debug("hub: retrying", "attempt", attempt+1, "err", err)
		if werr := c.backoff(ctx, attempt); werr != nil {
			return err
		}
	}
}

// fileURL is the resolve URL of a file at a revision.
func (c *Client) fileURL(repo, rev, file string) string {
	segs := strings.Split(file, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return fmt.Sprintf("%s/%s/resolve/%s/%s", c.Endpoint, repo, url.PathEscape(rev), strings.Join(segs, "/"))
}

// ReadFile fetches a small file of a repo into memory (at most max bytes),
// without caching it. Show uses it for the model card of a model not pulled.
func (c *Client) ReadFile(ctx context.Context, repo, rev, file string, max int64) ([]byte, error) {
	if err := ValidateRepoID(repo); err != nil {
		return nil, err
	}
	if err := ValidatePath(file); err != nil {
		return nil, err
	}
	if rev == "" {
		rev = DefaultRevision
	}
	var b []byte
	err := c.retry(ctx, func(int) error {
		resp, _, err := c.follow(ctx, http.MethodGet, c.fileURL(repo, rev, file), nil, true)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return statusError(resp)
		}
		defer resp.Body.Close()
		b, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
		if err == nil && int64(len(b)) > max {
			return fmt.Errorf("%s is larger than %d bytes", file, max)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hub: %s: %s: %w", repo, file, err)
	}
	return b, nil
}
