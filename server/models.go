package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/engine"
	"github.com/llm-go/llm/modelfile"
)

// manager loads models on first use, counts the requests of each, unloads
// a model when its keep-alive runs out after its last request, and keeps at
// most Config.MaxModels loaded, evicting the least recently used idle one.
type manager struct {
	cfg     Config
	res     *resolver
	metrics *metrics
	log     *slog.Logger
	ctx     context.Context // the server's: cancelled by close, aborting loads
	cancel  context.CancelFunc

	mu      sync.Mutex
	names   map[string]string // a configured model's short name or source → its short name
	sources map[string]string // a configured model's short name → its source
	order   []string          // configured short names, in order
	entries map[string]*entry // loaded or loading, by name
	closed  bool
}

// entry is one loaded (or loading) model.
type entry struct {
	name   string        // what clients call it
	source string        // what was resolved: a path or a Hub name
	ready  chan struct{} // closed when the load finished, well or not
	err    error         // why the load failed

	// Set when loaded, then read-only.
	path     string
	preset   *modelfile.Settings // when the name is a preset
	p        *llm.Pipeline
	mem      memEstimate
	loadTime time.Duration
	loadedAt time.Time

	// Guarded by manager.mu.
	inflight  int           // generations admitted (a request with n choices counts n): running, waiting, or waiting for the load
	keepAlive time.Duration // after the last request; < 0 forever
	lastUsed  time.Time
	expires   time.Time // when the idle model unloads; zero when busy or kept forever
	timer     *time.Timer
}

// lease is one request's hold on a loaded model.
type lease struct {
	m            *manager
	e            *entry
	p            *llm.Pipeline
	name         string
	preset       *modelfile.Settings // the model's preset, or nil
	loadDuration time.Duration       // how long this request waited for the load
	weight       int                 // the generations it holds room for (OpenAI's n)
	once         sync.Once
}

func newManager(cfg Config, met *metrics) *manager {
	m := &manager{cfg: cfg, res: &resolver{client: cfg.Hub, presets: cfg.Presets}, metrics: met, log: cfg.Logger,
		names: map[string]string{}, sources: map[string]string{}, entries: map[string]*entry{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// register makes source a configured model, answering to its short name.
func (m *manager) register(source string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := shortName(source)
	if prev, ok := m.sources[name]; ok && prev != source {
		return "", fmt.Errorf("server: two models are named %q: %s and %s", name, prev, source)
	}
	if _, ok := m.sources[name]; !ok {
		m.order = append(m.order, name)
	}
	m.names[name], m.names[source], m.sources[name] = name, name, source
	return name, nil
}

// lookup returns the name and source of the model a request names: a
// configured model by its short name or source (with or without Ollama's
// ":latest" tag), else the name itself. No name means the first configured
// model.
func (m *manager) lookup(name string) (canon, source string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if name == "" {
		if len(m.order) == 0 {
			return "", "", badRequest("model", `field "model" is required: this server has no default model`)
		}
		return m.order[0], m.sources[m.order[0]], nil
	}
	if c, ok := m.names[name]; ok {
		return c, m.sources[c], nil
	}
	if base, ok := strings.CutSuffix(name, ":latest"); ok {
		if c, ok := m.names[base]; ok {
			return c, m.sources[c], nil
		}
	}
	if m.cfg.NoLocalPaths && isLocal(name) {
		return "", "", &apiError{status: http.StatusForbidden, code: "local_path_refused", param: "model",
			msg: fmt.Sprintf("model %q: this server loads no local files but its configured models (llm serve --allow-paths)", name)}
	}
	return name, name, nil
}

// isLocal reports whether a model name names a local file or directory.
func isLocal(name string) bool {
	if looksLikePath(name) {
		return true
	}
	_, err := os.Stat(name)
	return err == nil
}

// acquire returns a lease on the model name for one generation; see
// acquireN.
func (m *manager) acquire(ctx context.Context, name string) (*lease, error) {
	return m.acquireN(ctx, name, 1)
}

// acquireN returns a lease on the model name, loading it if needed, for n
// generations run together (OpenAI's n): they count against the model's
// limit as n requests do. A model whose running and waiting generations
// would exceed Parallel+Queue is errBusy; n greater than Parallel+Queue,
// which no model can ever admit, is a 400 on the field "n". The wait for a
// load ends with ctx; the load itself goes on for later requests.
func (m *manager) acquireN(ctx context.Context, name string, n int) (*lease, error) {
	canon, source, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	if limit := m.cfg.Parallel + m.cfg.Queue; n > limit {
		return nil, badRequest("n", "field \"n\" is %d, but this server admits at most %d generations of one model at once (%d running + %d waiting): ask for %d or fewer",
			n, limit, m.cfg.Parallel, m.cfg.Queue, limit)
	}
	start := time.Now()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errShuttingDown()
	}
	e := m.entries[canon]
	switch {
	case e == nil:
		e = &entry{name: canon, source: source, ready: make(chan struct{}), inflight: n, keepAlive: m.cfg.KeepAlive}
		m.entries[canon] = e
		go m.load(e)
	case e.inflight+n > m.cfg.Parallel+m.cfg.Queue:
		running, waiting := min(e.inflight, m.cfg.Parallel), e.inflight-min(e.inflight, m.cfg.Parallel)
		m.mu.Unlock()
		return nil, errBusy(canon, running, waiting)
	default:
		e.inflight += n
		e.stopTimer()
	}
	m.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		m.release(e, n, nil)
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	l := &lease{m: m, e: e, p: e.p, name: canon, preset: e.preset, weight: n}
	if d := time.Since(start); d > time.Millisecond {
		l.loadDuration = d
	}
	return l, nil
}

// release ends the lease. keepAlive, when not nil, is the model's new
// keep-alive (0 unloads it now if no other request holds it).
func (l *lease) release(keepAlive *time.Duration) {
	l.once.Do(func() { l.m.release(l.e, l.weight, keepAlive) })
}

// release gives back n of e's admitted generations.
func (m *manager) release(e *entry, n int, keepAlive *time.Duration) {
	m.mu.Lock()
	e.inflight -= n
	e.lastUsed = time.Now()
	if keepAlive != nil {
		e.keepAlive = *keepAlive
	}
	var gone *entry
	if e.inflight == 0 && e.p != nil && m.entries[e.name] == e {
		gone = m.idle(e)
	}
	m.mu.Unlock()
	if gone != nil {
		m.unloadEntry(gone, "keep_alive 0")
	}
}

// idle starts e's keep-alive, now that no request holds it; it returns e
// when e is to unload now (the caller unloads it outside the lock).
// m.mu is held.
func (m *manager) idle(e *entry) *entry {
	switch ka := e.keepAlive; {
	case ka == 0:
		m.remove(e)
		return e
	case ka > 0:
		e.expires = time.Now().Add(ka)
		e.timer = time.AfterFunc(ka, func() { m.expire(e) })
	default:
		e.expires = time.Time{}
	}
	return nil
}

// expire unloads e if its keep-alive has run out and nothing holds it.
func (m *manager) expire(e *entry) {
	m.mu.Lock()
	if m.entries[e.name] != e || e.inflight > 0 || e.expires.IsZero() || time.Now().Before(e.expires) {
		m.mu.Unlock()
		return
	}
	m.remove(e)
	m.mu.Unlock()
	m.unloadEntry(e, "keep_alive expired")
}

func (e *entry) stopTimer() {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.expires = time.Time{}
}

// remove takes e out of the table. m.mu is held.
func (m *manager) remove(e *entry) {
	if m.entries[e.name] == e {
		delete(m.entries, e.name)
	}
	e.stopTimer()
}

// unloadEntry closes a removed entry's pipeline.
func (m *manager) unloadEntry(e *entry, why string) {
	if e.p == nil {
		return
	}
	if err := e.p.Close(); err != nil {
		m.log.Warn("unloading a model", "model", e.name, "err", err)
	}
	m.metrics.unloaded(e.name)
	m.log.Info("model unloaded", "model", e.name, "reason", why)
}

// unload unloads the model name now, or when its running requests end. It
// reports whether the model was loaded.
func (m *manager) unload(name string) bool {
	canon, _, err := m.lookup(name)
	if err != nil {
		return false
	}
	m.mu.Lock()
	e := m.entries[canon]
	if e == nil || e.p == nil {
		m.mu.Unlock()
		return false
	}
	e.keepAlive = 0
	if e.inflight > 0 {
		m.mu.Unlock()
		return true
	}
	m.remove(e)
	m.mu.Unlock()
	m.unloadEntry(e, "keep_alive 0")
	return true
}

// load resolves, checks and opens e's model, then wakes its waiters.
func (m *manager) load(e *entry) {
	start := time.Now()
	p, tgt, mem, err := m.open(e)
	m.mu.Lock()
	if err == nil && m.closed {
		p.Close()
		err = errShuttingDown()
	}
	if err != nil {
		// Logged before the waiters wake, so that the log comes before
		// what they say of the failure.
		m.metrics.loadFailed(e.name)
		m.log.Warn("loading a model failed", "model", e.name, "err", err)
		e.err = err
		if m.entries[e.name] == e {
			delete(m.entries, e.name)
		}
		close(e.ready)
		m.mu.Unlock()
		return
	}
	e.p, e.path, e.preset, e.mem, e.loadTime, e.loadedAt = p, tgt.path, tgt.preset, mem, time.Since(start), time.Now()
	e.lastUsed = e.loadedAt
	close(e.ready)
	var gone *entry
	if e.inflight == 0 { // every requester left during the load
		gone = m.idle(e)
	}
	m.mu.Unlock()
	m.metrics.loaded(e.name, e.loadTime)
	m.log.Info("model loaded", "model", e.name, "path", tgt.path, "seconds", e.loadTime.Seconds(),
		"estimated_memory", mib(mem.Total()))
	if gone != nil {
		m.unloadEntry(gone, "keep_alive 0")
	}
}

// open resolves e's source, makes room for it and opens it.
func (m *manager) open(e *entry) (*llm.Pipeline, target, memEstimate, error) {
	tgt, err := m.res.resolve(m.ctx, e.name, e.source, true)
	if err != nil {
		return nil, target{}, memEstimate{}, err
	}
	mem, err := estimateMemory(tgt.path, m.cfg.ContextLength, m.cfg.Parallel)
	if err != nil {
		return nil, target{}, memEstimate{}, errorf(http.StatusBadRequest, "invalid_model", "model %q: %v", e.name, err)
	}
	d, hasDraft := m.cfg.Drafts[e.name]
	if !hasDraft {
		d, hasDraft = m.cfg.Drafts[e.source]
	}
	if hasDraft {
		// Resolved (pulled, converted) here to count it; the pipeline
		// finds it in the caches.
		path, err := m.res.weights(m.ctx, e.name, d, true)
		if err != nil {
			// The server's configuration, not the request, is at fault.
			return nil, target{}, memEstimate{}, errorf(http.StatusInternalServerError, "draft_unavailable", "the draft model %s of %q: %s", d, e.name, clean(err))
		}
		dm, err := estimateMemory(path, mem.Context/max(m.cfg.Parallel, 1), m.cfg.Parallel)
		if err != nil {
			return nil, target{}, memEstimate{}, errorf(http.StatusInternalServerError, "draft_unavailable", "the draft model %s of %q: %v", d, e.name, err)
		}
		mem.Draft = dm.Total()
	}
	layers := m.cfg.GPULayers
	if layers == llm.AutoLayers {
		// Counted here rather than by the pipeline, so that the memory
		// check below knows what stays on the host.
		layers = 0
		if engine.HaveGPU() {
			n, why, err := engine.AutoGPULayers(tgt.path, engine.ContextOptions{ContextLength: mem.Context})
			if err != nil {
				return nil, target{}, memEstimate{}, errorf(http.StatusBadRequest, "invalid_model", "model %q: %v", e.name, err)
			}
			layers = n
			m.log.Info("GPU offload", "model", e.name, "layers", n, "why", why)
		}
	}
	if err := m.makeRoom(e, mem, layers); err != nil {
		return nil, target{}, memEstimate{}, err
	}
	opts := []llm.Option{llm.WithParallel(m.cfg.Parallel), llm.WithThreads(m.cfg.Threads),
		llm.WithContextLength(m.cfg.ContextLength), llm.WithGPULayers(layers)}
	opts = append(opts, m.cfg.Options...)
	if hasDraft {
		opts = append(opts, llm.WithDraft(d, m.cfg.DraftTokens))
	}
	if m.cfg.Hub != nil {
		opts = append(opts, llm.WithHub(m.cfg.Hub))
	}
	if m.cfg.Presets != nil {
		opts = append(opts, llm.WithPresets(m.cfg.Presets))
	}
	p, err := m.cfg.Loader(m.ctx, tgt.load, opts...)
	if err != nil {
		return nil, target{}, memEstimate{}, fmt.Errorf("loading model %q: %w", e.name, err)
	}
	return p, tgt, mem, nil
}

// makeRoom unloads idle models, least recently used first, until fewer
// than MaxModels others are loaded and the estimated memory of the new one,
// with gpuLayers offloaded, fits in the available memory.
func (m *manager) makeRoom(e *entry, mem memEstimate, gpuLayers int) error {
	for {
		m.mu.Lock()
		if len(m.entries)-1 < m.cfg.MaxModels {
			m.mu.Unlock()
			break
		}
		v := m.lruIdle(e)
		if v == nil {
			n := len(m.entries) - 1
			m.mu.Unlock()
			return &apiError{status: http.StatusServiceUnavailable, code: "too_many_models", retryAfter: time.Second,
				msg: fmt.Sprintf("cannot load model %q: %d models are loaded (the most this server holds) and all are in use; retry later", e.name, n)}
		}
		m.remove(v)
		m.mu.Unlock()
		m.unloadEntry(v, "making room for "+e.name)
	}
	for {
		avail, err := m.cfg.MemoryAvailable()
		if err != nil {
			m.log.Warn("not checking memory", "err", err)
			return nil
		}
		if mem.Host(gpuLayers, dedicatedGPU()) <= avail {
			return nil
		}
		m.mu.Lock()
		v := m.lruIdle(e)
		if v != nil {
			m.remove(v)
		}
		m.mu.Unlock()
		if v == nil {
			return &apiError{status: http.StatusInsufficientStorage, code: "insufficient_memory",
				msg: fmt.Sprintf("model %q needs about %s of host memory (weights %s + KV cache %s for %d positions%s, less what %d GPU layers take), but only %s is available",
					e.name, mib(mem.Host(gpuLayers, dedicatedGPU())), mib(mem.Weights), mib(mem.KV), mem.Context, draftNote(mem), gpuLayers, mib(avail))}
		}
		m.unloadEntry(v, "making room for "+e.name)
	}
}

// draftNote names the draft model's share of mem in messages.
func draftNote(mem memEstimate) string {
	if mem.Draft == 0 {
		return ""
	}
	return " + draft model " + mib(mem.Draft)
}

// lruIdle returns the least recently used loaded model other than except
// that no request holds, or nil. m.mu is held.
func (m *manager) lruIdle(except *entry) *entry {
	var best *entry
	for _, e := range m.entries {
		if e == except || e.p == nil || e.inflight > 0 {
			continue
		}
		if best == nil || e.lastUsed.Before(best.lastUsed) {
			best = e
		}
	}
	return best
}

// loadedModel is a snapshot of one loaded model, for listings and metrics.
type loadedModel struct {
	name     string
	path     string
	p        *llm.Pipeline
	mem      memEstimate
	inflight int
	expires  time.Time // zero: never, or busy
	loadedAt time.Time
}

// loaded lists the loaded models by name.
func (m *manager) loaded() []loadedModel {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []loadedModel
	for _, e := range m.entries {
		if e.p == nil {
			continue
		}
		out = append(out, loadedModel{name: e.name, path: e.path, p: e.p, mem: e.mem, inflight: e.inflight,
			expires: e.expires, loadedAt: e.loadedAt})
	}
	slices.SortFunc(out, func(a, b loadedModel) int { return strings.Compare(a.name, b.name) })
	return out
}

// admitted counts the requests holding each model, loaded or loading.
func (m *manager) admitted() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.entries))
	for _, e := range m.entries {
		out[e.name] = e.inflight
	}
	return out
}

// configured lists the configured models' short names and sources.
func (m *manager) configured() (names, sources []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.order {
		names = append(names, n)
		sources = append(sources, m.sources[n])
	}
	return names, sources
}

// close unloads every model; later requests are refused.
func (m *manager) close() {
	m.cancel()
	m.mu.Lock()
	m.closed = true
	var all []*entry
	for _, e := range m.entries {
		all = append(all, e)
		e.stopTimer()
	}
	clear(m.entries)
	m.mu.Unlock()
	for _, e := range all {
		<-e.ready
		m.unloadEntry(e, "server closed")
	}
}

func errShuttingDown() *apiError {
	return errorf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
}
