package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshconform/meshconform/suites/sim/benchinput"
)

func main() {
	out := flag.String("out", "", "output directory")
	entries := flag.Int("entries", 1000, "number of ServiceEntries")
	exps := flag.Int("expectations", 1000, "number of expectations")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "genbench: --out is required")
		os.Exit(2)
	}
	cfg, exp := benchinput.Generate(*entries, *exps)
	if err := os.MkdirAll(filepath.Join(*out, "istio"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "genbench:", err)
		os.Exit(1)
	}
	for name, data := range map[string]string{"istio/entries.yaml": cfg, "expectations.yaml": exp} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(data), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "genbench:", err)
			os.Exit(1)
		}
	}
}
