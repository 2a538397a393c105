#!/usr/bin/env bash
# Cut or restore the link between the lab's datacenters: the router container is the only
# path between them, so dropping everything it forwards splits them (established
# connections included) without touching the nodes.
#   lab/link.sh cut|restore|status [ROUTER]   (ROUTER: pgha-router, or pgha-t-router)
set -euo pipefail

action=${1:?usage: $0 cut|restore|status [router]}
router=${2:-pgha-router}
table='inet pgha_lab'   # our own table: nothing else in the router uses nftables

run() { docker exec -i "$router" "$@"; }

[ "$(docker inspect -f '{{.State.Running}}' "$router" 2>/dev/null)" = true ] \
  || { echo "router $router is not running (make lab-up)" >&2; exit 1; }

case "$action" in
  cut)
    run nft -f - <<NFT
table $table
delete table $table
table $table {
  chain forward {
    type filter hook forward priority 0; policy drop;
  }
}
NFT
    echo "link cut at $router"
    ;;
  restore)
    # "table X" first makes the delete succeed whether or not the table exists.
    run nft -f - <<NFT
table $table
delete table $table
NFT
    echo "link restored at $router"
    ;;
  status)
    if run nft list table inet pgha_lab >/dev/null 2>&1; then echo cut; else echo up; fi
    ;;
  *)
    echo "usage: $0 cut|restore|status [router]" >&2
    exit 2
    ;;
esac
