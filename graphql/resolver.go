package graphql

import (
	"context"
	"errors"
	"sync"

	"github.com/pimhook/pimhook"
	"github.com/pimhook/pimhook/graphql/internal/exec"
	pimhttp "github.com/pimhook/pimhook/http"
)

// resolver is the root of the resolvers: what they share.
type resolver struct {
	cfg Config
	// saveMu serializes saveWebhook's find-or-create, so that two saves of
	// one (jobID, url, event) at once make one webhook, not two. It covers
	// one process; nodes sharing a database may still race.
	saveMu sync.Mutex
}

var _ exec.ResolverRoot = (*resolver)(nil)

// Query returns the resolvers of the query fields.
func (r *resolver) Query() exec.QueryResolver { return queryResolver{r} }

// Mutation returns the resolvers of the mutation fields.
func (r *resolver) Mutation() exec.MutationResolver { return mutationResolver{r} }

// Webhook returns the resolvers of Webhook's fields that load more data.
func (r *resolver) Webhook() exec.WebhookResolver { return webhookResolver{r} }

// App returns the resolvers of App's fields that load more data.
func (r *resolver) App() exec.AppResolver { return appResolver{r} }

// Delivery returns the resolvers of Delivery's fields that load more data.
func (r *resolver) Delivery() exec.DeliveryResolver { return deliveryResolver{r} }

type (
	queryResolver    struct{ *resolver }
	mutationResolver struct{ *resolver }
	webhookResolver  struct{ *resolver }
	appResolver      struct{ *resolver }
	deliveryResolver struct{ *resolver }
)

// company returns the company the request authenticated as. The handler is
// mounted behind authentication, so its absence is a wiring mistake; it is
// still refused rather than served.
func company(ctx context.Context) (*pimhook.Company, error) {
	co := pimhttp.CompanyFromContext(ctx)
	if co == nil {
		return nil, pimhook.Errorf(pimhook.KindUnauthorized, pimhook.CodeUnauthorized,
			"a valid API key is required: send Authorization: Bearer <key>")
	}
	return co, nil
}

// renameFields returns err with the input field it names renamed by names,
// for operations whose arguments are named otherwise than the domain's
// fields (saveWebhook's url is a webhook's callback_url). The *pimhook.Error
// is copied: errors may be shared values.
func renameFields(err error, names map[string]string) error {
	e, ok := errors.AsType[*pimhook.Error](err)
	if !ok || e.Kind == pimhook.KindInternal {
		return err
	}
	if n, ok := names[e.Field]; ok {
		return e.WithField(n)
	}
	return err
}
