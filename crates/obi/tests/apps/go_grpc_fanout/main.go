// A net/http server whose handlers call a gRPC server (grpc-go, Debian's
// golang-google-grpc-dev) and an HTTP server, for the Go gRPC parent tests.
// Built by build_go_grpc.sh in GOPATH mode against /usr/share/gocode.
//
//	/fanout/<id>/<calls>?via=grpc    makes <calls> unary gRPC calls of
//	    method /leaf/<id>/<k> (the parent audit's convention,
//	    tests/common/audit.rs), one after the other from the handler's
//	    goroutine, all multiplexed on one HTTP/2 connection;
//	/fanout/<id>/<calls>?via=mixed   the same, but even k are net/http GETs
//	    of <http>/leaf/<id>/<k>;
//	/fanout/<id>/<calls>?via=grpc-goroutine  each gRPC call from a goroutine
//	    of its own, waited for.
//	any other path answers "leaf".
//
// With -leaf it is instead a gRPC server answering every method
// /leaf/<id>/<k> with "leaf\n" (reading frames through a 32 KiB buffer, so
// a burst's frames arrive whole).
//
// Prints "ready <port>" when it serves.
package main

import (
	"context"
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

	"google.golang.org/grpc"
)

// rawCodec sends and receives bytes as they are (no generated stubs).
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string   { return "proto" }
func (rawCodec) String() string { return "proto" }

// serveLeaves answers every /leaf/... method with "leaf\n".
func serveLeaves(ln net.Listener) error {
	leaf := func(srv interface{}, stream grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(stream)
		if !strings.HasPrefix(method, "/leaf/") {
			return fmt.Errorf("no method %s", method)
		}
		var req []byte
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		resp := []byte("leaf\n")
		return stream.SendMsg(&resp)
	}
	return grpc.NewServer(grpc.CustomCodec(rawCodec{}), grpc.UnknownServiceHandler(leaf)).Serve(ln)
}

var (
	// Dialled at the first request, not at start: the agent then sees the
	// connection open (an HTTP/2 connection joined midway is not decoded).
	conn       *grpc.ClientConn
	dialOnce   sync.Once
	target     string
	httpBase   string
	httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
)

func callGRPC(id string, k int) error {
	dialOnce.Do(func() {
		var err error
		if conn, err = grpc.Dial(target, grpc.WithInsecure()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, resp := []byte("x"), []byte(nil)
	err := conn.Invoke(ctx, fmt.Sprintf("/leaf/%s/%d", id, k), &req, &resp, grpc.ForceCodec(rawCodec{}))
	if err == nil && string(resp) != "leaf\n" {
		err = fmt.Errorf("unexpected answer %q", resp)
	}
	return err
}

func callHTTP(id string, k int) error {
	resp, err := httpClient.Get(fmt.Sprintf("%s/leaf/%s/%d", httpBase, id, k))
	if err != nil {
		return err
	}
	io.Copy(ioutil.Discard, resp.Body)
	resp.Body.Close()
	return nil
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
	via := r.URL.Query().Get("via")
	errs := make([]error, calls)
	if via == "grpc-goroutine" {
		var wg sync.WaitGroup
		for k := 0; k < calls; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				errs[k] = callGRPC(id, k)
			}(k)
		}
		wg.Wait()
	} else {
		for k := 0; k < calls; k++ {
			if via == "mixed" && k%2 == 0 {
				errs[k] = callHTTP(id, k)
			} else {
				errs[k] = callGRPC(id, k)
			}
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
	flag.StringVar(&target, "grpc", "", "host:port of the gRPC server")
	flag.StringVar(&httpBase, "http", "", "base URL of the HTTP server")
	leaves := flag.Bool("leaf", false, "serve gRPC leaves instead")
	flag.Parse()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fanout/") {
			fanout(w, r)
			return
		}
		io.WriteString(w, "leaf\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	serve := func() error { return http.Serve(ln, nil) }
	if *leaves {
		serve = func() error { return serveLeaves(ln) }
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
