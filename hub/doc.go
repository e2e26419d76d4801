// Package hub is a client for the Hugging Face Hub that shares its cache with
// Python's huggingface_hub.
//
// It speaks the Hub's HTTP protocol (repo info from /api/models, files from
// /{repo}/resolve/{revision}/{path} with redirects to a CDN and Range
// requests) and stores what it downloads in the standard cache layout:
//
//	$HF_HUB_CACHE/models--{org}--{name}/
//	    blobs/{etag}                       file contents, named by ETag
//	    snapshots/{commit}/{path}          relative symlinks to ../../blobs/{etag}
//	    refs/{revision}                    the commit a branch or tag points to
//	    .no_exist/{commit}/{path}          empty markers for files the repo lacks
//	$HF_HUB_CACHE/.locks/models--{org}--{name}/{etag}.lock
//
// Models that Python fetched are reused as they are, and what this package
// fetches is usable by Python. Downloads go to blobs/{etag}.incomplete, are
// hashed while they stream, checked against the LFS sha256 (or the git blob
// id of small files), and renamed into place only when they verify. A lock
// per blob keeps two processes from fetching the same blob twice, and an
// interrupted download resumes from its .incomplete file with a Range request.
//
// Models are named by [Ref]: "org/repo", "org/repo:Q4_K_M" (one quantization
// of a GGUF repo) or "org/repo/path/file.gguf". [Client.Pull] downloads what
// inference needs; [Cache] lists, resolves (offline) and removes models.
//
// The environment is read as huggingface_hub reads it: HF_ENDPOINT, HF_HOME,
// HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN (else the file $HF_HOME/token);
// see [LoadEnv]. The token is sent as a bearer token to the endpoint only,
// never to a redirect target on another host, and never printed or logged.
package hub
