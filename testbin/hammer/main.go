// webhook-hammer: the admission benchmark's client (bench/peer_bench.py). It POSTs one
// AdmissionReview to a webhook TOTAL times with CONCURRENCY requests in flight at any time,
// over kept-alive HTTPS connections (as the apiserver holds them to a webhook), and prints each
// request's latency in seconds, one per line. A Go client, so that on a 2-core machine the
// figures are the webhook's and not a Python client's.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "", "the webhook's URL")
	caFile := flag.String("ca", "", "PEM CA bundle the webhook's certificate chains to")
	bodyFile := flag.String("body", "", "file holding the AdmissionReview to send")
	concurrency := flag.Int("concurrency", 50, "requests in flight at any time")
	total := flag.Int("total", 1000, "requests measured (after one warm-up round)")
	flag.Parse()

	ca, err := os.ReadFile(*caFile)
	check(err)
	body, err := os.ReadFile(*bodyFile)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		check(fmt.Errorf("%s: no PEM certificate", *caFile))
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool},
			MaxIdleConnsPerHost: *concurrency,
			MaxConnsPerHost:     *concurrency,
		},
	}
	post := func() time.Duration {
		started := time.Now()
		resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
		check(err)
		data, err := io.ReadAll(resp.Body)
		check(err)
		resp.Body.Close()
		elapsed := time.Since(started)
		var review struct {
			Response struct {
				Allowed bool `json:"allowed"`
			} `json:"response"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(data, &review) != nil || !review.Response.Allowed {
			check(fmt.Errorf("HTTP %d, not allowed: %s", resp.StatusCode, data))
		}
		return elapsed
	}
	run := func(n int) []time.Duration {
		jobs := make(chan struct{}, n)
		for i := 0; i < n; i++ {
			jobs <- struct{}{}
		}
		close(jobs)
		var mu sync.Mutex
		var wg sync.WaitGroup
		out := make([]time.Duration, 0, n)
		for w := 0; w < *concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range jobs {
					d := post()
					mu.Lock()
					out = append(out, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return out
	}
	run(*concurrency) // opens the connections
	w := bufio.NewWriter(os.Stdout)
	for _, d := range run(*total) {
		fmt.Fprintf(w, "%.6f\n", d.Seconds())
	}
	check(w.Flush())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "webhook-hammer:", err)
		os.Exit(1)
	}
}
