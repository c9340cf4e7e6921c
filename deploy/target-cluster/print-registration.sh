#!/usr/bin/env bash
# Print the JSON body that registers this cluster with Gateway Portal (POST /api/v1/clusters/).
# Run after `kubectl apply -k deploy/target-cluster`, with kubectl pointed at the managed cluster.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: print-registration.sh NAME [options]
  NAME                     the cluster's name in the portal (lower-case DNS label, e.g. prod-eu-1)
  --api-server URL         API server URL as the portal reaches it (default: the current kubectl context's)
  --label KEY=VALUE        a label for cluster selectors; repeat for several
  --ingress-gateway NS/N   default istio-system/ingress-gateway
  --egress-gateway NS/N    default istio-system/egress-gateway
  --context CONTEXT        kubectl context to read from (default: the current one)
EOF
  exit 2
}

[[ $# -ge 1 && $1 != -* ]] || usage
name=$1
shift
api_server="" ingress="istio-system/ingress-gateway" egress="istio-system/egress-gateway"
labels=() kubectl_args=()
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || usage
  case $1 in
    --api-server) api_server=$2 ;;
    --label) [[ $2 == *=* ]] || { echo "--label needs KEY=VALUE, got '$2'" >&2; exit 2; }; labels+=("$2") ;;
    --ingress-gateway) ingress=$2 ;;
    --egress-gateway) egress=$2 ;;
    --context) kubectl_args=(--context "$2") ;;
    *) usage ;;
  esac
  shift 2
done

if [[ -z $api_server ]]; then
  api_server=$(kubectl "${kubectl_args[@]}" config view --minify -o jsonpath='{.clusters[0].cluster.server}')
fi
secret_field() {
  kubectl "${kubectl_args[@]}" -n istio-system get secret gatewayportal-token -o jsonpath="{.data.$1}" | base64 -d
}
token=$(secret_field token)
ca_cert=$(secret_field 'ca\.crt')
if [[ -z $token || -z $ca_cert ]]; then
  echo "secret istio-system/gatewayportal-token has no token yet; apply deploy/target-cluster and retry" >&2
  exit 1
fi

# python3 does the JSON encoding: the CA is multi-line PEM and values must be escaped exactly.
NAME=$name API_SERVER=$api_server CA_CERT=$ca_cert TOKEN=$token INGRESS=$ingress EGRESS=$egress \
  python3 - "${labels[@]}" <<'EOF'
import json, os, sys

labels = dict(item.split("=", 1) for item in sys.argv[1:])
print(json.dumps({
    "name": os.environ["NAME"],
    "api_server": os.environ["API_SERVER"],
    "ca_cert": os.environ["CA_CERT"],
    "token": os.environ["TOKEN"],
    "labels": labels,
    "ingress_gateway": os.environ["INGRESS"],
    "egress_gateway": os.environ["EGRESS"],
}, indent=2))
EOF
