package hubserver

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configures a Server.
type Options struct {
	// CDN is the base URL (scheme://host:port) that LFS downloads redirect to,
	// served by CDNHandler. Empty serves LFS files directly from /resolve/.
	CDN string
	// Tokens are the bearer tokens accepted for gated and private repos.
	Tokens []string
	// Wrap, when set, is called before a file's content is served (by
	// /resolve/ or the CDN). It returns the writer to serve through, or
	// false when it has answered the request itself. Tests use it to count,
	// slow down, corrupt or cut transfers.
	Wrap func(w http.ResponseWriter, r *http.Request, repo *Repo, f *File) (http.ResponseWriter, bool)
	// Logger logs each request at debug level (nil: none).
	Logger *slog.Logger
}

// Server serves repos over the Hub protocol. It is an http.Handler for the
// Hub's endpoints; CDNHandler serves the LFS redirect targets.
type Server struct {
	opts  Options
	mu    sync.RWMutex
	repos map[string]*Repo
	lfs   map[string]lfsEntry // sha256 -> a file with that content
}

type lfsEntry struct {
	repo *Repo
	file *File
}

// New returns a server for repos.
func New(repos []*Repo, opts Options) *Server {
	s := &Server{opts: opts, repos: map[string]*Repo{}, lfs: map[string]lfsEntry{}}
	for _, r := range repos {
		s.Add(r)
	}
	return s
}

// Add serves another repo (replacing one with the same id).
func (s *Server) Add(r *Repo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[r.ID] = r
	for _, c := range r.Commits {
		for _, f := range c.Files {
			if f.LFS {
				s.lfs[f.SHA256] = lfsEntry{r, f}
			}
		}
	}
}

// Repos lists the repo ids served, sorted.
func (s *Server) Repos() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]string, 0, len(s.repos))
	for id := range s.repos {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Repo returns the repo with this id, or nil.
func (s *Server) Repo(id string) *Repo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.repos[id]
}

// SetCDN changes the LFS redirect base URL.
func (s *Server) SetCDN(base string) {
	s.mu.Lock()
	s.opts.CDN = strings.TrimRight(base, "/")
	s.mu.Unlock()
}

func (s *Server) cdn() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.opts.CDN
}

// hubError answers with the Hub's error headers.
func hubError(w http.ResponseWriter, status int, code, msg string) {
	if code != "" {
		w.Header().Set("X-Error-Code", code)
	}
	w.Header().Set("X-Error-Message", msg)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// authorized reports whether the request carries an accepted token, and
// whether it carries one at all.
func (s *Server) authorized(r *http.Request) (ok, present bool) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || tok == "" {
		return false, false
	}
	for _, t := range s.opts.Tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(tok)) == 1 {
			return true, true
		}
	}
	return false, true
}

// ServeHTTP serves GET /api/models, GET /api/models/{repo}[/revision/{rev}]
// and GET/HEAD /{repo}/resolve/{rev}/{path}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if l := s.opts.Logger; l != nil {
		l.Debug("hub request", "method", r.Method, "path", r.URL.Path, "range", r.Header.Get("Range"))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hubError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	segs, err := splitEscaped(r.URL.EscapedPath())
	if err != nil {
		hubError(w, http.StatusBadRequest, "", "bad path")
		return
	}
	switch {
	case len(segs) == 2 && segs[0] == "api" && segs[1] == "models":
		s.serveList(w)
	case len(segs) >= 3 && segs[0] == "api" && segs[1] == "models":
		s.serveInfo(w, r, segs[2:])
	default:
		for i, seg := range segs {
			if seg == "resolve" && (i == 1 || i == 2) && len(segs) > i+2 {
				s.serveResolve(w, r, strings.Join(segs[:i], "/"), segs[i+1], strings.Join(segs[i+2:], "/"))
				return
			}
		}
		hubError(w, http.StatusNotFound, "", "not found")
	}
}

// splitEscaped splits an escaped path into unescaped segments, so that an
// escaped '/' in a revision ("refs%2Fpr%2F1") stays in its segment.
func splitEscaped(p string) ([]string, error) {
	var out []string
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func (s *Server) serveList(w http.ResponseWriter) {
	type item struct {
		ID           string    `json:"id"`
		ModelID      string    `json:"modelId"`
		SHA          string    `json:"sha"`
		LastModified time.Time `json:"lastModified"`
	}
	var items []item
	for _, id := range s.Repos() {
		r := s.Repo(id)
		if r.Private {
			continue
		}
		if c := r.resolve("main"); c != nil {
			items = append(items, item{id, id, c.SHA, c.LastModified})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(items)
}

func (s *Server) lookupRepo(w http.ResponseWriter, r *http.Request, id string) *Repo {
	repo := s.Repo(id)
	ok, present := s.authorized(r)
	if repo == nil || (repo.Private && !ok) {
		status := http.StatusUnauthorized
		if present {
			status = http.StatusNotFound
		}
		hubError(w, status, "RepoNotFound", "Repository not found")
		return nil
	}
	return repo
}

func (s *Server) serveInfo(w http.ResponseWriter, r *http.Request, segs []string) {
	rev := "main"
	var idSegs []string
	switch {
	case len(segs) >= 3 && segs[len(segs)-2] == "revision":
		idSegs, rev = segs[:len(segs)-2], segs[len(segs)-1]
	default:
		idSegs = segs
	}
	repo := s.lookupRepo(w, r, strings.Join(idSegs, "/"))
	if repo == nil {
		return
	}
	c := repo.resolve(rev)
	if c == nil {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	blobs := r.URL.Query().Get("blobs") == "true" || r.URL.Query().Get("blobs") == "1"
	type lfs struct {
		SHA256      string `json:"sha256"`
		Size        int64  `json:"size"`
		PointerSize int    `json:"pointerSize"`
	}
	type sibling struct {
		Path   string `json:"rfilename"`
		BlobID string `json:"blobId,omitempty"`
		Size   int64  `json:"size,omitempty"`
		LFS    *lfs   `json:"lfs,omitempty"`
	}
	var sibs []sibling
	var used int64
	tags := map[string]bool{}
	for _, f := range c.Files {
		sb := sibling{Path: f.Path}
		if blobs {
			sb.BlobID, sb.Size = f.GitOID, f.Size
			if f.LFS {
				sb.LFS = &lfs{f.SHA256, f.Size, len(LFSPointer(f.SHA256, f.Size))}
			}
		}
		sibs = append(sibs, sb)
		used += f.Size
		switch {
		case strings.HasSuffix(f.Path, ".gguf"):
			tags["gguf"] = true
		case strings.HasSuffix(f.Path, ".safetensors"):
			tags["safetensors"] = true
		}
	}
	card := c.card()
	info := map[string]any{
		"_id":          c.SHA[:24],
		"id":           repo.ID,
		"modelId":      repo.ID,
		"sha":          c.SHA,
		"lastModified": c.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"),
		"createdAt":    c.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"),
		"private":      repo.Private,
		"disabled":     false,
		"gated":        false,
		"siblings":     sibs,
		"usedStorage":  used,
		"downloads":    0,
		"likes":        0,
	}
	if repo.Gated {
		info["gated"] = "manual"
	}
	if i := strings.IndexByte(repo.ID, '/'); i > 0 {
		info["author"] = repo.ID[:i]
	}
	if card != nil {
		info["cardData"] = card
		if t, ok := card["tags"].([]any); ok {
			for _, v := range t {
				if s, ok := v.(string); ok {
					tags[s] = true
				}
			}
		}
		if p, ok := card["pipeline_tag"].(string); ok {
			info["pipeline_tag"] = p
		}
		if l, ok := card["library_name"].(string); ok {
			info["library_name"] = l
		}
	}
	tagList := make([]string, 0, len(tags))
	for t := range tags {
		tagList = append(tagList, t)
	}
	sort.Strings(tagList)
	info["tags"] = tagList
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(info)
}

func (s *Server) serveResolve(w http.ResponseWriter, r *http.Request, id, rev, path string) {
	repo := s.lookupRepo(w, r, id)
	if repo == nil {
		return
	}
	c := repo.resolve(rev)
	if c == nil {
		hubError(w, http.StatusNotFound, "RevisionNotFound", fmt.Sprintf("Invalid rev id: %s", rev))
		return
	}
	if repo.Gated {
		if ok, present := s.authorized(r); !ok {
			status := http.StatusUnauthorized
			msg := fmt.Sprintf("Access to model %s is restricted. You must have access to it and be authenticated to access it. Please log in.", repo.ID)
			if present {
				status = http.StatusForbidden
				msg = fmt.Sprintf("Access to model %s is restricted and you are not in the authorized list. Visit the model page to ask for access.", repo.ID)
			}
			hubError(w, status, "GatedRepo", msg)
			return
		}
	}
	f := c.file(path)
	if f == nil {
		hubError(w, http.StatusNotFound, "EntryNotFound", fmt.Sprintf("%s does not exist on %q", path, rev))
		return
	}
	h := w.Header()
	h.Set("X-Repo-Commit", c.SHA)
	if f.LFS {
		h.Set("X-Linked-Etag", `"`+f.SHA256+`"`)
		h.Set("X-Linked-Size", fmt.Sprint(f.Size))
		if cdn := s.cdn(); cdn != "" {
			h.Set("ETag", `"`+f.GitOID+`"`)
			h.Set("Location", fmt.Sprintf("%s/lfs/%s?filename=%s&X-Signature=test", cdn, f.SHA256, url.QueryEscape(pathBase(f.Path))))
			h.Set("Content-Length", "0")
			w.WriteHeader(http.StatusFound)
			return
		}
	}
	s.serveBody(w, r, repo, f)
}

// CDNHandler serves GET/HEAD /lfs/{sha256}: the targets of LFS redirects.
// It needs no token, like the Hub's CDN.
func (s *Server) CDNHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sha, ok := strings.CutPrefix(r.URL.Path, "/lfs/")
		s.mu.RLock()
		e, found := s.lfs[sha]
		s.mu.RUnlock()
		if !ok || !found {
			http.Error(w, "NoSuchKey", http.StatusNotFound)
			return
		}
		s.serveBody(w, r, e.repo, e.file)
	})
}

// serveBody sends a file's content, with Range support, through Wrap.
func (s *Server) serveBody(w http.ResponseWriter, r *http.Request, repo *Repo, f *File) {
	if s.opts.Wrap != nil {
		var ok bool
		if w, ok = s.opts.Wrap(w, r, repo, f); !ok {
			return
		}
	}
	rs, err := f.open()
	if err != nil {
		http.Error(w, "cannot read file", http.StatusInternalServerError)
		return
	}
	defer rs.Close()
	h := w.Header()
	if h.Get("ETag") == "" {
		h.Set("ETag", `"`+f.ETag()+`"`)
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf("inline; filename*=UTF-8''%s; filename=%q;", url.PathEscape(pathBase(f.Path)), pathBase(f.Path)))
	http.ServeContent(w, r, "", f.ModTime, rs)
}

func pathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
