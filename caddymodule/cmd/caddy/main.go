// Command caddy is Caddy with its standard modules and payhook, as
// `xcaddy build --with github.com/payhook/payhook` builds it. It serves the
// README's demo and development (`go build -o caddy ./caddymodule/cmd/caddy`);
// production builds follow xcaddy.md.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/payhook/payhook/caddymodule"
)

func main() {
	caddycmd.Main()
}
