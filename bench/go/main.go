// The Go baseline for bench/nginx.ts: the same three routes as bench's fcgi app, served by
// net/http/fcgi (stdlib only, so it builds offline with Debian's golang-go).
//
//	go build -o /tmp/fcgi-bench-go ./bench/go && /tmp/fcgi-bench-go -listen unix:/tmp/app.sock
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "host:port or unix:/path")
	flag.Parse()

	download := make([]byte, 1<<20)
	for i := range download {
		download[i] = byte(i)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(download)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		// Count without keeping: the bench measures streaming, not buffering.
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strconv.FormatInt(n, 10))
	})

	network, address := "tcp", *listen
	if strings.HasPrefix(address, "unix:") {
		network, address = "unix", strings.TrimPrefix(address, "unix:")
		os.Remove(address)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "listening on %s\n", *listen)
	log.Fatal(fcgi.Serve(l, mux))
}
