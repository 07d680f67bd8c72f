#!/usr/bin/env bash
# The role walkthrough: a development PKI, 100 onboarded devices, then the TSO, the aggregator and
# the device fleet as separate processes until the first activation is settled (compressed
# timing: three to five minutes). Run it from the repository root with crowdflex on the PATH.
# Runtime files go to ./state; TSO_PORT and AGGREGATOR_PORT move the two listeners.
set -euo pipefail
TSO_PORT=${TSO_PORT:-8443}                # the ports of examples/tso.toml
AGGREGATOR_PORT=${AGGREGATOR_PORT:-9443}  # and examples/aggregator.toml

crowdflex certs init --dir certs/dev                                  # CA (+ vtn, ven)
crowdflex certs issue --dir certs/dev --name tso --role vtn
crowdflex certs issue --dir certs/dev --name aggregator-vtn --role vtn
crowdflex certs issue --dir certs/dev --name aggregator --role ven
crowdflex certs fleet --dir certs/dev --devices 100 --csv state/onboarding.csv
crowdflex privacy keygen --key-file keys/vault-master.key
crowdflex aggregator --config examples/aggregator.toml --onboard state/onboarding.csv
rm state/onboarding.csv                          # the identities are in the vault now

wait_for() {  # wait_for FILE TEXT SECONDS WHAT: until the status file holds TEXT; stop,
              # saying so, if a node has ended or SECONDS have passed
    local waited=0 node
    until grep -qs "$2" "$1"; do
        for node in "${nodes[@]}"; do  # one kill -0 for all would succeed if any one lived
            kill -0 "$node" 2>/dev/null ||
                { echo "walkthrough: a node ended while waiting for $4" >&2; exit 1; }
        done
        ((waited++ < $3)) ||
            { echo "walkthrough: gave up waiting for $4 after $3 s" >&2; exit 1; }
        sleep 1
    done
}
nodes=()
trap 'kill "${nodes[@]}" 2>/dev/null || true' EXIT
crowdflex tso --config examples/tso.toml --port "$TSO_PORT" &
nodes+=($!)
wait_for state/tso.status.json '"state": "serving"' 60 "the TSO to listen"
crowdflex aggregator --config examples/aggregator.toml --port "$AGGREGATOR_PORT" \
                     --tso-url "https://127.0.0.1:$TSO_PORT" &
nodes+=($!)
wait_for state/aggregator.status.json '"state": "serving"' 120 "the aggregator to register"
crowdflex device --config examples/device.toml \
                 --aggregator-url "https://127.0.0.1:$AGGREGATOR_PORT" &
nodes+=($!)
wait_for state/aggregator.status.json '"payment_eur"' 600 "the TSO's settlement statement"
kill -TERM "${nodes[@]}"
for node in "${nodes[@]}"; do wait "$node"; done                # each exits 0 once stopped
crowdflex privacy audit state --vault state/vault.db --key-file keys/vault-master.key
