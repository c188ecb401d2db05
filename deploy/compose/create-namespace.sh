#!/bin/sh
# Creates the namespace and registers kombosync's search attributes (docs/ARCHITECTURE.md section 3).
# Safe to run again.
set -eu
ns=${DEFAULT_NAMESPACE:-default}
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do sleep 1; done
temporal operator namespace describe -n "$ns" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$ns" --address "$TEMPORAL_ADDRESS"
for sa in KomboIntegrationId=Keyword KomboTool=Keyword KomboCategory=Keyword KomboSyncState=Keyword KomboLastSyncAt=Datetime; do
  name=${sa%%=*}; type=${sa#*=}
  temporal operator search-attribute list -n "$ns" --address "$TEMPORAL_ADDRESS" | grep -qw "$name" ||
    temporal operator search-attribute create -n "$ns" --address "$TEMPORAL_ADDRESS" --name "$name" --type "$type"
done
echo "namespace $ns ready"
