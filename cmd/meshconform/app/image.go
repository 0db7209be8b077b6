package app

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/meshconform/meshconform/fixtures/images"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build and push the agent image (for run --kubeconfig on a cluster that pulls from a registry)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newImagePushCmd(g))
	return cmd
}

func newImagePushCmd(g *globals) *cobra.Command {
	var arch string
	cmd := &cobra.Command{
		Use:   "push REF",
		Short: "Build the agent image and push it to REF without a Docker daemon",
		Long: `push builds the same agent image "meshconform run" loads into kind nodes —
the static agent binary of this source tree, FROM scratch, entrypoint /agent,
tagged by content hash — and pushes it to REF with go-containerregistry (no
Docker daemon, as ko does), using your Docker config's credentials (docker
login, credential helpers). A REF without a tag gets the content-hash tag.

It prints the pushed reference and its digest; pass the digest form to
"meshconform run --kubeconfig ... --agent-image" so the cluster pulls exactly
this image.`,
		Example: `  meshconform image push registry.example.com/platform/meshconform-agent
  meshconform run --kubeconfig staging.yaml --agent-image registry.example.com/platform/meshconform-agent@sha256:...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := name.ParseReference(args[0]); err != nil {
				return badInput(fmt.Errorf("image push: %q is not an image reference (REGISTRY/REPOSITORY[:TAG]): %w", args[0], err))
			}
			p, err := images.PushAgent(cmd.Context(), args[0], arch)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "pushed %s in %.1fs\n", p.Ref, p.Elapsed.Seconds())
			fmt.Fprintln(g.stdout, p.ByDigest)
			return nil
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "", "CPU architecture of the cluster's nodes (default: this machine's, e.g. amd64)")
	return cmd
}
