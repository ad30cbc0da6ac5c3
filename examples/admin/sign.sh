#!/bin/sh
# Signs one wxgate admin API request (docs/admin-api.md) and prints its four headers, one per
# line, ready for `curl -H @-`:
#
#   body='{"userId":"alice"}'
#   sh sign.sh POST /v1/tokens "$body" |
#     curl -sS -H @- -H 'content-type: application/json' --data-binary "$body" "$WXGATE_URL/v1/tokens"
#
#   sh sign.sh METHOD PATH[?QUERY] [BODY]   BODY exactly as sent (none for GET/DELETE)
#   sh sign.sh --selftest                  prints the signature of the documented worked example
#
# Key from WXGATE_KEY_ID / WXGATE_KEY_SECRET (default: local mode's key). Needs openssl and a
# POSIX shell. The secret is an argument of openssl, so other users of the machine can see it in
# the process list: on shared machines sign with the Node, Python or Java example instead.
set -eu

hex_sha256() { openssl dgst -sha256 -r | cut -d' ' -f1; }

# signature SECRET METHOD PATH QUERY TIMESTAMP NONCE BODY
#   = hex(HMAC_SHA256(secret, METHOD\nPATH\nQUERY\nTIMESTAMP\nNONCE\nhex(SHA256(body))))
signature() {
  body_hash=$(printf '%s' "$7" | hex_sha256)
  printf '%s\n%s\n%s\n%s\n%s\n%s' "$2" "$3" "$4" "$5" "$6" "$body_hash" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1
}

if [ "${1:-}" = --selftest ]; then
  signature local-dev-admin-secret POST /v1/push 'a=1' 1700000000 abcdefabcdefabcdef '{"x":1}'
  exit 0
fi
if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: sh sign.sh METHOD PATH[?QUERY] [BODY]   (or --selftest)" >&2
  exit 2
fi

method=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
target=$2
body=${3:-}
path=${target%%\?*}
query=
case $target in *\?*) query=${target#*\?} ;; esac
key_id=${WXGATE_KEY_ID:-local}
secret=${WXGATE_KEY_SECRET:-local-dev-admin-secret}
timestamp=$(date +%s)
nonce=$(openssl rand -hex 16)

printf 'X-Wxgate-Key: %s\n' "$key_id"
printf 'X-Wxgate-Timestamp: %s\n' "$timestamp"
printf 'X-Wxgate-Nonce: %s\n' "$nonce"
printf 'X-Wxgate-Signature: %s\n' "$(signature "$secret" "$method" "$path" "$query" "$timestamp" "$nonce" "$body")"
