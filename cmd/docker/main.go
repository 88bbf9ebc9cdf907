// Command docker is engined's own CLI: docker-compatible commands over the
// Engine gRPC API.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/engined/engined/internal/engineclient"
)

type globals struct {
	host string
	tls  engineclient.TLS
}

func (g *globals) dial() (*engineclient.Conn, error) {
	return engineclient.Dial(engineclient.Host(g.host), engineclient.TLSFromEnv(g.tls))
}

func main() {
	g := &globals{}
	root := &cobra.Command{
		Use:           "docker [OPTIONS] COMMAND",
		Short:         "A self-sufficient runtime for containers (engined's CLI)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.host, "host", "H", "", "engine address (unix:///path or tcp://host:port); default $DOCKER_HOST or "+engineclient.DefaultHost)
	pf.BoolVar(&g.tls.Enabled, "tls", false, "use TLS; implied by --tlsverify")
	pf.BoolVar(&g.tls.Verify, "tlsverify", false, "use TLS and verify the remote")
	pf.StringVar(&g.tls.CAFile, "tlscacert", "", "trust certs signed only by this CA")
	pf.StringVar(&g.tls.Cert, "tlscert", "", "path to TLS certificate file")
	pf.StringVar(&g.tls.Key, "tlskey", "", "path to TLS key file")
	root.AddCommand(versionCmd(g), infoCmd(g))
	if err := root.ExecuteContext(context.Background()); err != nil {
		if st, ok := status.FromError(err); ok {
			err = fmt.Errorf("%s", st.Message())
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
