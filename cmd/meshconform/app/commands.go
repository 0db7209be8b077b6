package app

import "github.com/spf13/cobra"

// commands is the explicit list of subcommands, one file each.
func commands(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newSimulateCmd(g),
		newChecksCmd(g),
		newRunCmd(g),
		newFixturesCmd(g),
		newDiffCmd(g),
		newImageCmd(g),
	}
}
