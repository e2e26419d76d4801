package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/llm-go/llm"
	"github.com/llm-go/llm/modelfile"
	"github.com/llm-go/llm/sampler"
)

// presetFlags are the settings a preset's PARAMETERs give defaults to.
type presetFlags struct {
	sampling *sampler.Options
	predict  *int // -n
	ctxLen   *int // --ctx-size
	threads  *int // --threads
}

// applyPreset makes a preset's PARAMETERs the defaults under the flags the
// user gave: the sampling options start from the preset's, and the flags
// set on the command line are applied again on top; num_predict, num_ctx
// and num_thread fill -n, --ctx-size and --threads when those are unset.
func applyPreset(fs *pflag.FlagSet, st *modelfile.Settings, f presetFlags) error {
	base, err := llm.PresetSampling(st)
	if err != nil {
		return usagef("preset %s: %v", st.Chain[0], err)
	}
	explicit := map[string]string{}
	fs.Visit(func(fl *pflag.Flag) {
		if isSamplingFlag(fl.Name) {
			explicit[fl.Name] = fl.Value.String()
		}
	})
	// The flags are bound to the fields of *f.sampling: replace the struct
	// in place, then set the explicit flags again.
	*f.sampling = base
	for name, v := range explicit {
		if err := fs.Set(name, v); err != nil {
			return usagef("--%s: %v", name, err)
		}
	}
	whole := func(name string) (int, bool) {
		v, ok := st.Parameters[name].(float64)
		return int(v), ok && v == float64(int(v))
	}
	if n, ok := whole("num_predict"); ok && f.predict != nil && !fs.Changed("predict") {
		*f.predict = n
	}
	if n, ok := whole("num_ctx"); ok && f.ctxLen != nil && !fs.Changed("ctx-size") {
		*f.ctxLen = n
	}
	if n, ok := whole("num_thread"); ok && f.threads != nil && !fs.Changed("threads") {
		*f.threads = n
	}
	return nil
}

// isSamplingFlag reports whether name is one of registerSamplingFlags'.
func isSamplingFlag(name string) bool {
	if name == "seed" {
		return true
	}
	for _, flag := range samplingFlags {
		if strings.TrimPrefix(flag, "--") == name {
			return true
		}
	}
	return false
}
