#!/bin/sh
# Inside the VM: the BLE benchmark. smpctl simulate --ble is the peripheral on hci0; on hci1, smpctl
# and the baseline (smpclient with bleak, Benchmarks/ble_smpclient.py) each run `image upload` of
# the benchmark image and an echo, RUNS times, taking turns, through the same bluetoothd.
# Configuration comes from .build/ble-bench/config (written by Benchmarks/ble_vm.py); one JSON line
# per run goes to .build/ble-bench/results-LABEL.jsonl.
set -u
cd /mnt/host
. .build/ble-bench/config
SMPCTL=/mnt/host/.build/release/smpctl
# SMPCTL_QUERY (config, may be empty): more ble: options for smpctl, such as &write=command.
CONN="ble:smpctl-sim?adapter=hci1${SMPCTL_QUERY:-}"
OUT=".build/ble-bench/results-$LABEL.jsonl"
: >"$OUT"
LOGS=".build/ble-bench/logs-$LABEL"
rm -rf "$LOGS"; mkdir -p "$LOGS"
export PYTHONPATH=/mnt/host/.build/ble-bench/pylib
now() { date +%s.%N; }
record() { # client kind run process-seconds status json-from-the-client (and the start, as epoch seconds)
    printf '{"label":"%s","client":"%s","kind":"%s","run":%s,"process_seconds":%s,"status":%s,"started_epoch":%s,"inner":%s}\n' \
        "$LABEL" "$1" "$2" "$3" "$4" "$5" "$t0" "${6:-null}" >>"$OUT"
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "bench: $(grep -h Channels /etc/bluetooth/main.conf) $(grep -h ExchangeMTU /etc/bluetooth/main.conf)"
"$SMPCTL" simulate --ble --adapter hci0 --name smpctl-sim --buf-size "$BUF_SIZE" >/tmp/peripheral.out 2>/tmp/peripheral.err &
peripheral=$!
i=0
until [ -s /tmp/peripheral.out ]; do
    i=$((i + 1))
    kill -0 "$peripheral" 2>/dev/null || { cat /tmp/peripheral.err; echo "bench: the peripheral exited"; exit 1; }
    [ "$i" -le 300 ] || { echo "bench: the peripheral did not start"; exit 1; }
    sleep 0.1
done
# One scan so that the peripheral is known; up to three (one advertising report, bluez-vm-notes.md).
for attempt in 1 2 3; do
    "$SMPCTL" scan --adapter hci1 --timeout 10 2>&1 | grep -q smpctl-sim && break
done

run=1
while [ "$run" -le "$RUNS" ]; do
    # smpctl: upload (whole process; the upload's own time from its JSON), then echo.
    t0=$(now)
    status=0
    "$SMPCTL" -c "$CONN" --json image upload "$IMAGE" >/tmp/up.json 2>/tmp/up.err || status=$?
    cp /tmp/up.err "$LOGS/smpctl-upload-$run.err"
    t1=$(now)
    inner=$(tr -d '\n' </tmp/up.json)
    record smpctl upload "$run" "$(elapsed "$t0" "$t1")" "$status" "${inner:-null}"
    grep -h '"event":"ble_link"' /tmp/up.err | tail -1 | sed "s/^/bench: smpctl run $run link: /"
    grep -h 'resen\|refused the chunk\|sending the window again' /tmp/up.err | wc -l | sed "s/^/bench: smpctl run $run log lines about resends: /"
    [ "$status" -eq 0 ] || tail -5 /tmp/up.err
    t0=$(now)
    status=0
    "$SMPCTL" -c "$CONN" --json echo ping >/tmp/echo.json 2>/tmp/echo.err || status=$?
    cp /tmp/echo.err "$LOGS/smpctl-echo-$run.err"
    t1=$(now)
    inner=$(tr -d '\n' </tmp/echo.json)
    record smpctl echo "$run" "$(elapsed "$t0" "$t1")" "$status" "${inner:-null}"

    # smpclient with bleak: upload, then echo (CLIENTS=smpctl leaves them out).
    if [ "${CLIENTS:-both}" = smpctl ]; then
        echo "bench: run $run of $RUNS done"
        run=$((run + 1))
        continue
    fi
    t0=$(now)
    status=0
    timeout "$PEER_TIMEOUT" python3 Benchmarks/ble_smpclient.py smpctl-sim upload "$IMAGE" >/tmp/peer.json 2>/tmp/peer.err || status=$?
    cp /tmp/peer.err "$LOGS/smpclient-upload-$run.err"
    t1=$(now)
    inner=$(tail -1 /tmp/peer.json)
    record smpclient upload "$run" "$(elapsed "$t0" "$t1")" "$status" "${inner:-null}"
    [ "$status" -eq 0 ] || { echo "bench: smpclient upload run $run exited $status"; tail -5 /tmp/peer.err; }
    t0=$(now)
    status=0
    timeout "$PEER_TIMEOUT" python3 Benchmarks/ble_smpclient.py smpctl-sim echo >/tmp/peer.json 2>/tmp/peer.err || status=$?
    cp /tmp/peer.err "$LOGS/smpclient-echo-$run.err"
    t1=$(now)
    inner=$(tail -1 /tmp/peer.json)
    record smpclient echo "$run" "$(elapsed "$t0" "$t1")" "$status" "${inner:-null}"
    echo "bench: run $run of $RUNS done"
    run=$((run + 1))
done
kill -TERM "$peripheral"
wait "$peripheral"
grep '^ble: ' /tmp/peripheral.err | tail -1 | sed 's/^/bench: peripheral /'
echo "bench: results in $OUT"
