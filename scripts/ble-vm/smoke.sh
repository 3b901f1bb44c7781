#!/bin/sh
# Inside the VM: both virtual controllers are powered and bluetoothd exports them over D-Bus.
set -e
btmgmt info | grep -E "^hci|current settings"
objects=$(dbus-send --system --print-reply --dest=org.bluez / org.freedesktop.DBus.ObjectManager.GetManagedObjects)
echo "$objects" | grep -q '"/org/bluez/hci0"'
echo "$objects" | grep -q '"/org/bluez/hci1"'
echo "smoke: bluetoothd exports hci0 and hci1"
