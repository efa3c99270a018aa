package graphql_test

import (
	"testing"
)

func TestApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type app struct {
		ID, Name, AppType, Worker string
		IsDefault                 bool
		Webhooks                  []struct{ ID string }
	}
	var created struct{ CreateApp app }
	e.do(`mutation { createApp(input: {name: "ERP"}) { id name appType worker isDefault } }`, nil, &created)
	a := created.CreateApp
	if a.Name != "ERP" || a.AppType != "generic" || a.Worker != "SHARED" || a.IsDefault {
		t.Errorf("created app: %+v", a)
	}
	var updated struct{ UpdateApp app }
	e.do(`mutation($id: ID!) { updateApp(id: $id, input: {appType: "Magento", worker: DEDICATED}) { id name appType worker } }`,
		map[string]any{"id": a.ID}, &updated)
	if u := updated.UpdateApp; u.Name != "ERP" || u.AppType != "magento" || u.Worker != "DEDICATED" {
		t.Errorf("updated app: %+v", u)
	}
	e.fail(`mutation { createApp(input: {name: "  "}) { id } }`, nil, "validation_failed", "name")
	e.fail(`mutation($id: ID!) { updateApp(id: $id, input: {appType: "no spaces"}) { id } }`, map[string]any{"id": a.ID}, "validation_failed", "appType")
	e.fail(`mutation { updateApp(id: "app_nope", input: {name: "x"}) { id } }`, nil, "app_not_found", "")

	var hook struct{ CreateWebhook struct{ ID string } }
	e.do(`mutation($app: ID!) { createWebhook(input: {appID: $app, callbackURL: "https://example.com/erp"}) { id } }`,
		map[string]any{"app": a.ID}, &hook)
	var one struct{ App app }
	e.do(`query($id: ID!) { app(id: $id) { id webhooks { id } } }`, map[string]any{"id": a.ID}, &one)
	if len(one.App.Webhooks) != 1 || one.App.Webhooks[0].ID != hook.CreateWebhook.ID {
		t.Errorf("app's webhooks: %+v", one.App.Webhooks)
	}

	del := `mutation($id: ID!) { deleteApp(id: $id) }`
	e.fail(del, map[string]any{"id": a.ID}, "app_in_use", "")
	e.do(`mutation($id: ID!) { deleteWebhook(id: $id) }`, map[string]any{"id": hook.CreateWebhook.ID}, nil)
	var out struct{ DeleteApp bool }
	e.do(del, map[string]any{"id": a.ID}, &out)
	if !out.DeleteApp {
		t.Error("deleteApp of an unused app: false")
	}
	e.do(del, map[string]any{"id": a.ID}, &out)
	if out.DeleteApp {
		t.Error("deleteApp of an unknown app: true")
	}
	var list struct{ Apps []app }
	e.do(`{ apps { id } }`, nil, &list)
	if len(list.Apps) != 0 {
		t.Errorf("apps after delete: %+v", list.Apps)
	}
}
