package main

import (
	"os"

	"github.com/meshconform/meshconform/cmd/meshconform/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:]))
}
