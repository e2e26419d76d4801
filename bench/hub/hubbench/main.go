// Command hubbench serves a folder over the Hub protocol and pulls from it,
// for bench/hub/throughput.sh. It builds without cgo.
//
//	hubbench serve -dir DIR -addr 127.0.0.1:PORT   (LFS redirects to PORT+1, the "CDN")
//	hubbench pull -endpoint URL -cache DIR -ref ORG/REPO[...] [-j N] [-chunk BYTES]
//
// pull prints: seconds bytes user_cpu_seconds sys_cpu_seconds.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/llm-go/llm/hub"
	"github.com/llm-go/llm/hub/hubserver"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: hubbench serve|pull ...")
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "pull":
		pull(os.Args[2:])
	default:
		log.Fatalf("unknown mode %q", os.Args[1])
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "folder of org/name repos")
	addr := fs.String("addr", "127.0.0.1:18090", "hub address; the CDN listens on the next port")
	fs.Parse(args)
	repos, err := hubserver.LoadTree(*dir)
	if err != nil {
		log.Fatal(err)
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	cdnAddr := net.JoinHostPort(host, strconv.Itoa(p+1))
	srv := hubserver.New(repos, hubserver.Options{CDN: "http://" + cdnAddr})
	go func() { log.Fatal(http.ListenAndServe(cdnAddr, srv.CDNHandler())) }()
	fmt.Fprintf(os.Stderr, "serving %v on http://%s (CDN http://%s)\n", srv.Repos(), *addr, cdnAddr)
	log.Fatal(http.ListenAndServe(*addr, srv))
}

func pull(args []string) {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "hub URL")
	cacheDir := fs.String("cache", "", "cache folder")
	ref := fs.String("ref", "", "model")
	jobs := fs.Int("j", hub.DefaultConcurrency, "concurrency")
	chunk := fs.Int64("chunk", 0, "chunk size (0: default; -1: one stream per file)")
	fs.Parse(args)
	cache, err := hub.OpenCache(*cacheDir)
	if err != nil {
		log.Fatal(err)
	}
	c := &hub.Client{Endpoint: *endpoint, Cache: cache, Concurrency: *jobs, ChunkSize: *chunk}
	if *chunk < 0 {
		c.ChunkSize = 1 << 50
	}
	r, err := hub.ParseRef(*ref)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	snap, err := c.Pull(context.Background(), r, hub.PullOptions{})
	if err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	fmt.Printf("%.3f %d %.3f %.3f\n", el.Seconds(), snap.Downloaded, tv(ru.Utime), tv(ru.Stime))
}
