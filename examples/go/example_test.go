package portico_test

import (
	"log"

	"portico"
)

// A gateway in front of a service on port 9000 that refuses requests
// without an X-Tenant header, with a filter written in Go. (Compiled by go
// test, not run: it serves until stopped.)
func Example_filter() {
	config := `{"listeners": [{"port": 8080}],
	  "services": [{"name": "api", "urls": ["http://127.0.0.1:9000"]}],
	  "routes": [{"name": "all", "paths": ["/**"], "service": "api",
	              "plugins": [{"name": "require-tenant"}]}]}`
	requireTenant := func(r *portico.Request) portico.Action {
		if _, ok := r.Header("X-Tenant"); ok {
			return portico.Continue
		}
		_ = r.Respond(400, []byte("X-Tenant is required\n"))
		return portico.Respond
	}
	gw, err := portico.NewGateway(config, portico.WithFilter("require-tenant", 450, requireTenant, nil))
	if err != nil {
		log.Fatal(err) // *portico.Error: status and message, e.g. "routes[0].paths[0]: ..."
	}
	defer gw.Close()
	if err := gw.Run(); err != nil { // until gw.RequestStop() or gw.Close()
		log.Fatal(err)
	}
}
