// A net/http server for the Go tests. With -calls URL, each request to
// /fanout makes -n sequential GETs of URL with net/http's client and
// answers once they are done; without it, every request is answered at
// once ("leaf"). Prints "ready <port>" when it serves.
package main

import (
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/http"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	calls := flag.String("calls", "", "URL each /fanout request GETs")
	n := flag.Int("n", 2, "GETs per /fanout request")
	flag.Parse()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if *calls == "" {
			io.WriteString(w, "leaf\n")
			return
		}
		for i := 0; i < *n; i++ {
			resp, err := client.Get(*calls)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			io.Copy(ioutil.Discard, resp.Body)
			resp.Body.Close()
		}
		io.WriteString(w, "fanout done\n")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
