//go:build !llm_amx

package engine_test

// amxBuild: this test binary was built without the tag llm_amx.
const amxBuild = false
