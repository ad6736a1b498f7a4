package main

import (
	"github.com/gobilling/billing/plansfile"
	"github.com/spf13/cobra"
)

func (a *app) schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the plans file's JSON Schema",
		Long: `Print the plans file's JSON Schema (draft 2020-12), for editors: save it
beside billing.yaml, or let the file's first line point editors at
` + plansfile.SchemaURL + `.
The schema is enforced by every command that reads or writes the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := a.io.out.Write(plansfile.Schema())
			return err
		},
	}
}
