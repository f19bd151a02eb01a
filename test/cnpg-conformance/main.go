// Command cnpg-conformance runs CloudNativePG's own Go code (v1.30.0, from the Go module proxy) against pgim.
//
// Each subcommand reads one JSON request on stdin and writes one JSON report on stdout; the mocha suite
// (test/integration/cnpg-conformance.test.ts) starts the pgim instances, calls this program and asserts on the
// reports. Nothing here decides pass or fail on its own except where CNPG's code itself returns an error.
//
//	cnpg-conformance decode     /pg/status documents -> CNPG's PostgresqlStatus (json.Unmarshal, and strictly)
//	cnpg-conformance endpoints  the operator's calls on :8000 through CNPG's remote instance client
//	cnpg-conformance specs      the pod template and job command lines/env that CNPG's pkg/specs generates
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: cnpg-conformance decode|endpoints|specs < request.json")
		os.Exit(2)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var report any
	switch os.Args[1] {
	case "decode":
		report, err = runDecode(input)
	case "endpoints":
		report, err = runEndpoints(input)
	case "specs":
		report, err = runSpecs(input)
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(report); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "cnpg-conformance: %v\n", err)
	os.Exit(1)
}
