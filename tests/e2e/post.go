// post URL FILE [HEADER: VALUE]...: POSTs the file with those headers through Go's net/http and
// prints the answer's body, a line break and its status, as curl -w '\n%{http_code}' does
// (tests/e2e/test_refusals.py).
package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

func main() {
	body, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	request, err := http.NewRequest("POST", os.Args[1], bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for _, header := range os.Args[3:] {
		name, value, _ := strings.Cut(header, ": ")
		request.Header.Set(name, value)
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%s\n%d", answer, response.StatusCode)
}
