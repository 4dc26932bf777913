# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
ARGS ?=

.PHONY: demo test setup bench start

setup: node_modules/.installed /usr/sbin/nats-server

# npm runs on the machine's Node here, usually older than the Node 24 it installs (the `node` dev
# dependency) that everything then runs on: its EBADENGINE warnings about that Node are noise, a screen
# of them. They are counted, not shown; every other line, and npm's exit status, come through.
node_modules/.installed: package.json package-lock.json
	set -o pipefail; npm ci 2>&1 | awk '/^npm warn EBADENGINE/ { hidden++; next } { print } \
	  END { if (hidden) print "(" hidden " EBADENGINE warning lines about this machine'"'"'s Node hidden: the project runs on the Node 24 it installs)" }'
	touch $@

# The platform starts its own nats-server; the Debian package's system service would hold port 4222.
/usr/sbin/nats-server:
	command -v nats-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y nats-server && \
	  { $(SUDO) systemctl disable --now nats-server 2>/dev/null || true; }; }

test: setup
	npm run typecheck
	npm run lint
	npm test

demo: setup
	npm run demo -- $(ARGS)

start: setup
	npm start

bench: setup
	npm run bench
