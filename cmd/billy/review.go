package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/iambilly/billy/apps/review"
	"github.com/iambilly/billy/smart"
)

// reviewClient is Billy Review's registration as a public SMART client: its redirect URI is where
// this server serves it.
func reviewClient(baseURL string) smart.ClientSpec {
	return smart.ClientSpec{ID: review.ClientID, Name: "Billy Review", Kind: smart.KindPublic,
		RedirectURIs: []string{strings.TrimSuffix(baseURL, "/") + review.Path},
		Scopes:       strings.Fields("launch launch/patient " + review.Scopes)}
}

// seedReview registers Billy Review (billy seed, so make run) and says how to open it.
func seedReview(ctx context.Context, a *app, stdout io.Writer) error {
	if _, _, err := a.smart.CreateClient(ctx, reviewClient(a.cfg.BaseURL)); err != nil {
		return fmt.Errorf("review app client: %w", err)
	}
	fmt.Fprintf(stdout, "Billy Review: public client %q; open %s%s (standalone) or launch it from the EMR (POST /oauth2/launch)\n",
		review.ClientID, strings.TrimSuffix(a.cfg.BaseURL, "/"), review.Path)
	return nil
}
