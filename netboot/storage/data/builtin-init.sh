#!/bin/busybox sh
# /sbin/init of netboot's built-in image: proves a client booted from its own root LUN.
# Prints NETBOOT-ROOT-OK <hostname> on the console, counts boots in /netboot-boot-count,
# reports stage os-up to the server,
# then powers off, or stays up with a shell when the kernel command line has netboot.stay=1.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -o remount,rw / 2>/dev/null
exec </dev/console >/dev/console 2>&1
cmdline=$(cat /proc/cmdline)
host=$(hostname)
if [ -z "$host" ] || [ "$host" = "(none)" ]; then
    for arg in $cmdline; do
        case "$arg" in netboot.hostname=*) host=${arg#netboot.hostname=} ;; esac
    done
fi
count=$(cat /netboot-boot-count 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > /netboot-boot-count
sync
echo "NETBOOT-BOOT-COUNT $count"
echo "NETBOOT-ROOT-OK ${host:-unknown}"
# Tell the server this system is up (stage os-up) at the report URL netboot's /init left;
# before powering off, so the report is sent, and bounded, so a lost server costs 3 s.
url=$(. /run/netboot/client.conf 2>/dev/null && echo "$NETBOOT_REPORT_URL")
[ -n "$url" ] && timeout -s KILL 3 wget -q -O /dev/null "$url/os-up" </dev/null >/dev/null 2>&1
case " $cmdline " in
    *" netboot.stay=1 "*)
        while true; do setsid cttyhack sh; done ;;
esac
sync
poweroff -f
