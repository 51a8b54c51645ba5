// A net/http server for the Go tests, written for Go 1.15 and later.
//
//	/fanout/<id>/<calls>?via=<via>&base=<url>  makes <calls> GETs of
//	    <base>/leaf/<id>/<k> with net/http's client (the parent audit's
//	    convention, tests/common/audit.rs), then answers. via=inline: one
//	    after the other from the handler's goroutine; via=goroutine: each
//	    from a goroutine of its own, waited for; via=pool: each handed to a
//	    shared pool of worker goroutines, grown (from the handler's
//	    goroutine) when no worker is idle, like a lazily grown thread pool
//	    (any via starting with "pool").
//	/status/<code>/...  answers "leaf" with that status.
//	/big/<n>/...  answers n bytes.
//	/slow/<ms>/... sleeps, /busy/<ms>/... spins the CPU for ms milliseconds,
//	    then answers; X-Handler-Start: when the handler started (wall
//	    clock, ns), for the "in queue" tests (tests/anatomy.rs).
//	any other path, with -calls URL: -n GETs of URL, then answers.
//	any other path, without -calls: answers "leaf" at once.
//
// With -cert and -key it serves HTTPS (HTTP/1.1 and, by ALPN, HTTP/2);
// -insecure makes its client accept any certificate, -h2 lets its client
// speak HTTP/2 over TLS. -max-conns N serves at most N connections at once
// (the others wait in the listen backlog).
//
// Prints "ready <port>" when it serves.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

type job struct {
	url  string
	done chan error
}

var jobs = make(chan job)

func worker() {
	for j := range jobs {
		j.done <- get(j.url)
	}
}

// pooled runs get(url) on an idle worker, starting one when none is idle.
func pooled(url string) error {
	j := job{url, make(chan error, 1)}
	select {
	case jobs <- j:
	default:
		go worker()
		jobs <- j
	}
	return <-j.done
}

func get(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	io.Copy(ioutil.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// limitListener accepts a connection only when fewer than cap(sem) are open.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// timed answers /slow/<ms> and /busy/<ms>, saying when the handler started.
func timed(w http.ResponseWriter, r *http.Request, busy bool) {
	started := time.Now()
	ms, err := strconv.Atoi(strings.Split(r.URL.Path, "/")[2])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	until := started.Add(time.Duration(ms) * time.Millisecond)
	if busy {
		for n := 0; time.Now().Before(until); n++ {
		}
	} else {
		time.Sleep(time.Until(until))
	}
	w.Header().Set("X-Handler-Start", strconv.FormatInt(started.UnixNano(), 10))
	io.WriteString(w, "slow\n")
}

func fanout(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/fanout/"), "/")
	if len(parts) < 2 {
		http.Error(w, "want /fanout/<id>/<calls>", http.StatusBadRequest)
		return
	}
	id := parts[0]
	calls, err := strconv.Atoi(parts[1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	base := r.URL.Query().Get("base")
	errs := make([]error, calls)
	if r.URL.Query().Get("via") == "goroutine" {
		var wg sync.WaitGroup
		for k := 0; k < calls; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				errs[k] = get(fmt.Sprintf("%s/leaf/%s/%d", base, id, k))
			}(k)
		}
		wg.Wait()
	} else if strings.HasPrefix(r.URL.Query().Get("via"), "pool") {
		for k := 0; k < calls; k++ {
			errs[k] = pooled(fmt.Sprintf("%s/leaf/%s/%d", base, id, k))
		}
	} else {
		for k := 0; k < calls; k++ {
			errs[k] = get(fmt.Sprintf("%s/leaf/%s/%d", base, id, k))
		}
	}
	for _, err := range errs {
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
	}
	io.WriteString(w, "fanout done\n")
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	calls := flag.String("calls", "", "URL each request GETs")
	n := flag.Int("n", 2, "GETs per request with -calls")
	cert := flag.String("cert", "", "certificate file: serve HTTPS")
	key := flag.String("key", "", "key file of -cert")
	insecure := flag.Bool("insecure", false, "client: accept any server certificate")
	h2 := flag.Bool("h2", false, "client: HTTP/2 over TLS when the server offers it")
	maxConns := flag.Int("max-conns", 0, "serve at most this many connections at once (0: no limit)")
	flag.Parse()
	transport := client.Transport.(*http.Transport)
	transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: *insecure}
	transport.ForceAttemptHTTP2 = *h2

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fanout/") && r.URL.Query().Get("base") != "" {
			fanout(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/slow/") || strings.HasPrefix(r.URL.Path, "/busy/") {
			timed(w, r, strings.HasPrefix(r.URL.Path, "/busy/"))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/big/") {
			n, err := strconv.Atoi(strings.Split(r.URL.Path, "/")[2])
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Write([]byte(strings.Repeat("x", n)))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/status/") {
			code, err := strconv.Atoi(strings.Split(r.URL.Path, "/")[2])
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			io.Copy(ioutil.Discard, r.Body)
			w.WriteHeader(code)
			io.WriteString(w, "leaf\n")
			return
		}
		if *calls == "" {
			io.WriteString(w, "leaf\n")
			return
		}
		for i := 0; i < *n; i++ {
			if err := get(*calls); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		io.WriteString(w, "fanout done\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if *maxConns > 0 {
		ln = &limitListener{ln, make(chan struct{}, *maxConns)}
	}
	fmt.Printf("ready %d\n", port)
	os.Stdout.Sync()
	serve := func() error { return http.Serve(ln, nil) }
	if *cert != "" {
		serve = func() error { return http.ServeTLS(ln, nil, *cert, *key) }
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
