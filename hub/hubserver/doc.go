// Package hubserver serves model repos over the Hugging Face Hub's HTTP
// protocol, enough of it for huggingface_hub and package hub to download from
// it: repo info (/api/models/{repo}/revision/{rev}, with siblings, sizes, LFS
// sha256 and card data) and files (/{repo}/resolve/{rev}/{path}) with the
// Hub's headers (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size), Range
// requests, a redirect of LFS files to a CDN base URL when one is set,
// and the Hub's error codes (RepoNotFound, RevisionNotFound, EntryNotFound,
// GatedRepo).
//
// Repos come from a folder tree (root/org/name/...: see LoadTree), from a
// Hugging Face cache (LoadCache), or are built in memory (NewRepo). "llm hub
// serve" uses it to mirror models on a LAN; package hubtest wraps it for
// tests.
package hubserver
