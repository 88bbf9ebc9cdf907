package cli

import (
	"strings"

	"github.com/spf13/cobra"

	enginev1 "github.com/engined/engined/proto/engine/v1"
)

// Shell completion (cobra's `docker completion bash|zsh|fish`) completes
// container, image and network names from engined.

func (c *CLI) completeContainers(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	e, err := c.engine()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	resp, err := e.ContainerList(cmd.Context(), &enginev1.ContainerListRequest{All: true})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, ct := range resp.GetContainers() {
		if n := strings.TrimPrefix(ct.GetName(), "/"); strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *CLI) completeImages(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "rmi" && cmd.Name() != "rm" && cmd.Name() != "save" && cmd.Name() != "inspect" {
		return nil, cobra.ShellCompDirectiveDefault
	}
	e, err := c.engine()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	resp, err := e.ImageList(cmd.Context(), &enginev1.ImageListRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, img := range resp.GetImages() {
		for _, t := range img.GetRepoTags() {
			if strings.HasPrefix(t, prefix) {
				out = append(out, t)
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (c *CLI) completeNetworks(cmd *cobra.Command, _ []string, prefix string) ([]string, cobra.ShellCompDirective) {
	e, err := c.engine()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	resp, err := e.NetworkList(cmd.Context(), &enginev1.NetworkListRequest{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range resp.GetNetworks() {
		if strings.HasPrefix(n.GetName(), prefix) {
			out = append(out, n.GetName())
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
