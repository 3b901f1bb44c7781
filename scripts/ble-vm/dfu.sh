#!/bin/sh
# Inside the VM: smpctl simulate --ble is the peripheral on hci0, smpctl the central on hci1,
# both through the real bluetoothd. Scan, image list and a full dfu of the example image.
set -u
cd /mnt/host
SMPCTL=/mnt/host/.build/release/smpctl
CONN='ble:smpctl-sim?adapter=hci1'
status=0
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
    echo "dfu.sh: FAILED: $*"
    echo "--- peripheral output"; cat /tmp/peripheral.out /tmp/peripheral.err 2>/dev/null | tail -30
    echo "--- btmgmt info"; btmgmt info 2>&1 | head -20; btmgmt --index 0 advinfo 2>&1 | tail -3
    echo "--- bluetoothd log"; tail -60 /tmp/bluetoothd.log
    exit 1
}

# The peripheral reports its whole buffer (2048 bytes) and reassembles requests split across
# writes, so the central's requests are larger than one write (MTU − 3) and the split path runs.
BUF_SIZE=2048
"$SMPCTL" simulate --ble --adapter hci0 --name smpctl-sim --buf-size "$BUF_SIZE" >/tmp/peripheral.out 2>/tmp/peripheral.err &
peripheral=$!
i=0
until [ -s /tmp/peripheral.out ]; do
    i=$((i + 1))
    kill -0 "$peripheral" 2>/dev/null || fail "the peripheral exited"
    [ "$i" -le 300 ] || fail "the peripheral did not announce itself in 30 s"
    sleep 0.1
done
echo "peripheral: $(head -1 /tmp/peripheral.out)"

# Discovery on the virtual link usually takes under a second but was once seen to take over 10 s:
# up to three 10-second scans.
t0=$(now)
for attempt in 1 2 3; do
    "$SMPCTL" scan --adapter hci1 --timeout 10 >/tmp/scan.out 2>&1 || { cat /tmp/scan.out; fail "scan failed"; }
    cat /tmp/scan.out
    grep -q smpctl-sim /tmp/scan.out && break
    [ "$attempt" -lt 3 ] || fail "three scans did not list smpctl-sim"
    echo "scan $attempt did not list smpctl-sim; advertising on hci0:"; btmgmt --index 0 advinfo 2>&1 | tail -2
done
echo "scan: $(elapsed "$t0" "$(now)") s ($attempt attempt(s))"

# The first connection to a freshly started peripheral: bluetoothd 5.66 sometimes brings the link
# up without emitting Connected or ServicesResolved (it logs `device_add_connection() ... is
# already connected`); smpctl reads the device's properties again while it waits, so one try must do.
t0=$(now)
"$SMPCTL" -c "$CONN" image list || fail "image list failed"
echo "image list: $(elapsed "$t0" "$(now)") s"

t0=$(now)
"$SMPCTL" -c "$CONN" --json dfu Examples/images/blinky-1.1.0.signed.bin >/tmp/dfu.json 2>/tmp/dfu.err || status=$?
t1=$(now)
cat /tmp/dfu.json
grep '"event":"ble_link"' /tmp/dfu.err
grep -v '"event":"upload' /tmp/dfu.err | grep -v '"event":"ble_link"' | tail -15
[ "$status" -eq 0 ] || fail "dfu exited with $status"
grep -q '"confirmed" *: *true' /tmp/dfu.json || fail "dfu did not confirm the new image"
echo "dfu over BLE: $(elapsed "$t0" "$t1") s"
"$SMPCTL" -c "$CONN" image list || fail "image list after dfu failed"

# The WriteValue/StartNotify path (?write=dbus) against the real bluetoothd: upload the image
# again into the secondary slot (the old image is there after the swap) and check the path used.
t0=$(now)
"$SMPCTL" -c "$CONN&write=dbus" --json image upload Examples/images/blinky-1.1.0.signed.bin \
    >/tmp/upload-dbus.json 2>/tmp/upload-dbus.err || status=$?
t1=$(now)
grep '"event":"ble_link"' /tmp/upload-dbus.err
# The WriteValue/StartNotify route (?write=dbus) is the one BlueZ builds without AcquireWrite take.
if [ "$status" -eq 0 ] && grep -q '"write_path":"dbus"' /tmp/upload-dbus.err; then
    echo "upload over WriteValue: $(elapsed "$t0" "$t1") s"
else
    tail -15 /tmp/upload-dbus.err
    fail "the upload over WriteValue (?write=dbus) exited with $status"
fi
status=0
kill -TERM "$peripheral"
pstatus=0
wait "$peripheral" || pstatus=$?
[ "$pstatus" -eq 0 ] || fail "the peripheral exited with $pstatus on SIGTERM"
# Requests must have been larger than one write (MTU − 3, 514 at MTU 517), gathered from several.
stats=$(grep '^ble: ' /tmp/peripheral.err | tail -1)
echo "peripheral: $stats"
largest=$(echo "$stats" | sed -n 's/.*largest \([0-9]*\) bytes.*/\1/p')
mtu=$(grep '"event":"ble_link"' /tmp/dfu.err | sed -n 's/.*"mtu":\([0-9]*\).*/\1/p' | head -1)
[ -n "$largest" ] || fail "the peripheral did not report its requests"
[ "$largest" -gt $(( ${mtu:-517} - 3 )) ] || fail "no request was larger than MTU - 3 (largest $largest bytes)"
alias=$(dbus-send --system --print-reply --dest=org.bluez /org/bluez/hci0 org.freedesktop.DBus.Properties.Get \
    string:org.bluez.Adapter1 string:Alias | sed -n 's/.*string "\(.*\)"/\1/p')
echo "peripheral stopped; hci0 alias restored to: $alias"
[ "$alias" != smpctl-sim ] || fail "the peripheral left hci0's alias set"
if [ ! -e /sys/class/bluetooth/hci3 ]; then
    echo "fleet of two over BLE: skipped (needs hci2 and hci3: VM_CONTROLLERS=4)"
    echo "dfu.sh: PASS"
    exit 0
fi
# A fleet of two BLE devices updated at once through one adapter: peripherals on hci2 and hci3
# (fresh controllers: a second peripheral on hci0 after smpctl-sim was seen never to answer Connect),
# the central on hci1, `fleet run --parallel 2 --per-adapter 2`. Each device gets its own
# connection, notifications and writes; their uploads must overlap in time.
"$SMPCTL" simulate --ble --adapter hci3 --name smpctl-a --buf-size "$BUF_SIZE" >/tmp/peripheral-a.out 2>/tmp/peripheral-a.err &
peripheral_a=$!
"$SMPCTL" simulate --ble --adapter hci2 --name smpctl-b --buf-size "$BUF_SIZE" >/tmp/peripheral-b.out 2>/tmp/peripheral-b.err &
peripheral_b=$!
i=0
until [ -s /tmp/peripheral-a.out ] && [ -s /tmp/peripheral-b.out ]; do
    i=$((i + 1))
    kill -0 "$peripheral_a" 2>/dev/null || { cat /tmp/peripheral-a.err; fail "peripheral smpctl-a exited"; }
    kill -0 "$peripheral_b" 2>/dev/null || { cat /tmp/peripheral-b.err; fail "peripheral smpctl-b exited"; }
    [ "$i" -le 300 ] || fail "the fleet's peripherals did not announce themselves in 30 s"
    sleep 0.1
done
mkdir -p /tmp/fleet
cat >/tmp/fleet/fleet.yaml <<EOF
version: 1
defaults: {timeout: 10, attempts: 2, reconnect-timeout: 30}
images:
  app: {file: /mnt/host/Examples/images/blinky-1.1.0.signed.bin, version: 1.1.0}
rules:
  - match: {board: sim}
    images: [app]
devices:
  - {name: ble-a, connection: "ble:smpctl-a?adapter=hci1", labels: {board: sim}}
  - {name: ble-b, connection: "ble:smpctl-b?adapter=hci1", labels: {board: sim}}
EOF
t0=$(now)
fstatus=0
"$SMPCTL" --json fleet run /tmp/fleet/fleet.yaml --parallel 2 --per-adapter 2 --journal /tmp/fleet/fleet.journal \
    >/tmp/fleet/out.json 2>/tmp/fleet/err.jsonl || fstatus=$?
t1=$(now)
"$SMPCTL" fleet status /tmp/fleet/fleet.journal || true
if [ "$fstatus" -ne 0 ]; then
    tail -20 /tmp/fleet/err.jsonl; tail -20 /tmp/fleet/fleet.logs/*.log
    fail "fleet run of two BLE devices exited with $fstatus"
fi
done_count=$(grep -o '"state" *: *"done"' /tmp/fleet/fleet.report.json | wc -l)
[ "$done_count" -eq 2 ] || fail "the fleet report shows $done_count devices done, not 2"
J=/tmp/fleet/fleet.journal
first_a=$(grep -n '"kind":"progress","name":"ble-a"' "$J" | head -1 | cut -d: -f1)
last_a=$(grep -n '"kind":"progress","name":"ble-a"' "$J" | tail -1 | cut -d: -f1)
first_b=$(grep -n '"kind":"progress","name":"ble-b"' "$J" | head -1 | cut -d: -f1)
last_b=$(grep -n '"kind":"progress","name":"ble-b"' "$J" | tail -1 | cut -d: -f1)
echo "fleet of two over BLE: $(elapsed "$t0" "$t1") s; journal progress lines a ${first_a:-?}-${last_a:-?}, b ${first_b:-?}-${last_b:-?}"
[ -n "$first_a" ] && [ -n "$first_b" ] || fail "the journal has no upload progress for both devices"
[ "$first_a" -lt "$last_b" ] && [ "$first_b" -lt "$last_a" ] || fail "the two uploads did not overlap"
for p in "$peripheral_a" "$peripheral_b"; do
    kill -TERM "$p"
    pst=0
    wait "$p" || pst=$?
    [ "$pst" -eq 0 ] || fail "a fleet peripheral exited with $pst on SIGTERM"
done
echo "dfu.sh: PASS"
