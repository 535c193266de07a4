#!/usr/bin/env bash
# install-deps.sh installs the external programs hoplite's tests drive
# (interop/): HTTP clients for every protocol, origin servers, an ACME test
# CA, and h2spec. It is idempotent and fast when everything is present: apt
# is skipped entirely when every command below is already on the machine.
#
# Runs as root on Debian 12 (CI); elsewhere it uses sudo for apt if needed.
set -euo pipefail

# Debian package -> a command it provides (the presence check).
declare -A pkg_cmd=(
	[curl]=curl
	[nghttp2-client]=nghttp
	[ngtcp2-client]=gtlsclient
	[chromium]=chromium
	[nginx-light]=nginx
	[apache2]=apache2
	[apache2-utils]=ab
	[pebble]=pebble
	[slowhttptest]=slowhttptest
	[python3]=python3
	[openssl]=openssl
)

# Daemons live in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for pkg in "${!pkg_cmd[@]}"; do
	command -v "${pkg_cmd[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done

apt_note="apt: nothing to install"
if ((${#missing[@]} > 0)); then
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq
	# Install the whole list (not only the missing ones) so a partial
	# install gets repaired; apt skips what is already current.
	"${sudo[@]}" apt-get install -y -qq "${!pkg_cmd[@]}" >/dev/null
	# The packages may have started their daemons; the tests start their own
	# on free ports. systemctl or service may be absent (containers): ignore.
	for svc in nginx apache2; do
		"${sudo[@]}" systemctl stop "$svc" >/dev/null 2>&1 ||
			"${sudo[@]}" service "$svc" stop >/dev/null 2>&1 || true
	done
	apt_note="apt: installed ${missing[*]}"
fi

# h2spec: the module has no go.mod and its tags predate modules, so the
# module proxy only serves it as "v2.2.1+incompatible"; the plain @v2.2.1
# form is rejected.
gobin="$(go env GOPATH)/bin"
h2spec_note="h2spec: present"
if [[ ! -x "$gobin/h2spec" ]]; then
	go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
	h2spec_note="h2spec: installed"
fi

for pkg in "${!pkg_cmd[@]}"; do
	command -v "${pkg_cmd[$pkg]}" >/dev/null 2>&1 || {
		echo "install-deps: ${pkg_cmd[$pkg]} (package $pkg) still missing" >&2
		exit 1
	}
done
echo "install-deps: ok (${apt_note}; ${h2spec_note} in ${gobin})"
