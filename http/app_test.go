package http_test

import (
	"net/http"
	"reflect"
	"testing"
)

func TestAppCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.post("/v1/apps", `{"name":" Webshop "}`)
	created := res.ok(t, http.StatusCreated)
	id := created["id"].(string)
	if loc := res.header.Get("Location"); loc != "/v1/apps/"+id {
		t.Fatalf("Location %q", loc)
	}
	if created["name"] != "Webshop" || created["app_type"] != "generic" || created["worker"] != "shared" || created["is_default"] != false {
		t.Fatalf("created: %v", created)
	}
	if got := e.get("/v1/apps/"+id).ok(t, http.StatusOK); !reflect.DeepEqual(got, created) {
		t.Fatalf("GET %v, created %v", got, created)
	}

	patched := e.do(req{method: "PATCH", path: "/v1/apps/" + id, body: `{"worker":"dedicated"}`}).ok(t, http.StatusOK)
	if patched["worker"] != "dedicated" || patched["name"] != "Webshop" || patched["app_type"] != "generic" {
		t.Fatalf("patched: %v", patched)
	}
	e.do(req{method: "PATCH", path: "/v1/apps/" + id, body: `{"app_type":"Not Valid!"}`}).
		problem(t, http.StatusBadRequest, "validation_failed")
	if got := e.get("/v1/apps/"+id).ok(t, http.StatusOK); !reflect.DeepEqual(got, patched) {
		t.Fatalf("after refused PATCH: %v, want %v", got, patched)
	}

	second := e.post("/v1/apps", `{"name":"ERP","app_type":"sap"}`).ok(t, http.StatusCreated)
	if apps := e.list("/v1/apps"); len(apps) != 2 {
		t.Fatalf("list: %v", apps)
	}

	// An app with webhooks cannot go.
	e.post("/v1/webhooks", map[string]any{"callback_url": "https://erp.example", "app_id": second["id"]}).ok(t, http.StatusCreated)
	e.do(req{method: "DELETE", path: "/v1/apps/" + second["id"].(string)}).problem(t, http.StatusConflict, "app_in_use")

	e.do(req{method: "DELETE", path: "/v1/apps/" + id}).ok(t, http.StatusNoContent)
	e.get("/v1/apps/"+id).problem(t, http.StatusNotFound, "app_not_found")
	if apps := e.list("/v1/apps"); len(apps) != 1 || apps[0].(map[string]any)["id"] != second["id"] {
		t.Fatalf("list after delete: %v", apps)
	}
}
