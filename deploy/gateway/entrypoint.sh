#!/bin/sh
# featureviz gateway: nginx.conf from the template and the API key file, then nginx in the foreground.
# Everything it reads comes from FEATUREVIZ_* variables (deploy/k8s sets them for the pod;
# serving/cluster.py for `make serve-cluster`). FEATUREVIZ_GATEWAY_CHECK_ONLY=1: render, check, exit.
set -eu
: "${FEATUREVIZ_API_KEY_FILE:=/etc/featureviz/api-key/api-key}"
: "${FEATUREVIZ_GATEWAY_TEMPLATE:=/etc/featureviz/gateway/nginx.conf.template}"
: "${FEATUREVIZ_GATEWAY_PREFIX:=/tmp/featureviz-gateway}"
: "${FEATUREVIZ_GATEWAY_NAME:=${HOSTNAME:-gateway}}"
: "${FEATUREVIZ_HTTP_LISTEN:=8090}"
: "${FEATUREVIZ_GRPC_LISTEN:=9070}"
: "${FEATUREVIZ_METRICS_LISTEN:=9082}"
: "${FEATUREVIZ_HTTP_SERVERS:=server 127.0.0.1:8080;}"
: "${FEATUREVIZ_GRPC_SERVERS:=server 127.0.0.1:7070;}"
: "${FEATUREVIZ_READY_SERVERS:=server 127.0.0.1:8079;}"
: "${FEATUREVIZ_METRICS_SERVERS:=server 127.0.0.1:8082;}"
: "${FEATUREVIZ_REPLICA_NAMES:=127.0.0.1:8080 ${FEATUREVIZ_GATEWAY_NAME}; 127.0.0.1:8079 ${FEATUREVIZ_GATEWAY_NAME}; 127.0.0.1:8082 ${FEATUREVIZ_GATEWAY_NAME};}"
export FEATUREVIZ_GATEWAY_PREFIX FEATUREVIZ_GATEWAY_NAME FEATUREVIZ_HTTP_LISTEN FEATUREVIZ_GRPC_LISTEN \
  FEATUREVIZ_METRICS_LISTEN FEATUREVIZ_HTTP_SERVERS FEATUREVIZ_GRPC_SERVERS FEATUREVIZ_READY_SERVERS \
  FEATUREVIZ_METRICS_SERVERS FEATUREVIZ_REPLICA_NAMES

key=$(cat "$FEATUREVIZ_API_KEY_FILE")
# RFC 6750's token characters only: the key goes into nginx's configuration as a quoted string.
case "$key" in
  ''|*[!A-Za-z0-9._~+/=-]*)
    echo "error: the API key in $FEATUREVIZ_API_KEY_FILE is empty or has characters other than A-Z a-z 0-9 . _ ~ + / = -" >&2
    exit 2;;
esac

umask 077
for sub in client_body proxy fastcgi uwsgi scgi; do mkdir -p "$FEATUREVIZ_GATEWAY_PREFIX/$sub"; done
printf '"Bearer %s" 1;\n' "$key" > "$FEATUREVIZ_GATEWAY_PREFIX/api_key.map"
envsubst "$(env | sed -n 's/^\(FEATUREVIZ_[A-Z_]*\)=.*/${\1}/p' | tr '\n' ' ')" \
  < "$FEATUREVIZ_GATEWAY_TEMPLATE" > "$FEATUREVIZ_GATEWAY_PREFIX/nginx.conf"
nginx -t -q -p "$FEATUREVIZ_GATEWAY_PREFIX" -c "$FEATUREVIZ_GATEWAY_PREFIX/nginx.conf" -e stderr
[ "${FEATUREVIZ_GATEWAY_CHECK_ONLY:-0}" = 1 ] && exit 0
exec nginx -p "$FEATUREVIZ_GATEWAY_PREFIX" -c "$FEATUREVIZ_GATEWAY_PREFIX/nginx.conf" -e stderr -g 'daemon off;'
