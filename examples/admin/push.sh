#!/bin/sh
# Mints a client token for a user, then pushes a message to that user, with curl and sign.sh
# (docs/admin-api.md). Prints each answer as `METHOD PATH -> STATUS BODY`; exits 1 on a non-2xx.
#
#   sh push.sh              WXGATE_URL (default http://127.0.0.1:3000), WXGATE_KEY_ID,
#                           WXGATE_KEY_SECRET (default local mode's key), WXGATE_USER (default demo-user)
#   sh push.sh --selftest   prints the signature of the documented worked example
set -eu
here=$(dirname "$0")
if [ "${1:-}" = --selftest ]; then exec sh "$here/sign.sh" --selftest; fi

url=${WXGATE_URL:-http://127.0.0.1:3000}
url=${url%/}
user=${WXGATE_USER:-demo-user}
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT

# call METHOD PATH BODY
call() {
  status=$(sh "$here/sign.sh" "$1" "$2" "$3" |
    curl -sS -o "$answer" -w '%{http_code}' -X "$1" -H @- -H 'content-type: application/json' --data-binary "$3" "$url$2")
  printf '%s %s -> %s %s\n' "$1" "$2" "$status" "$(cat "$answer")"
  case $status in 2??) ;; *) exit 1 ;; esac
}

# User ids are [A-Za-z0-9_.:@-], so they go into JSON as they are.
call POST /v1/tokens "{\"userId\":\"$user\"}"
call POST /v1/push "{\"to\":{\"users\":[\"$user\"]},\"body\":{\"text\":\"hello from curl\"}}"
