#!/bin/sh
# Install the Debian packages listed in debian-packages.txt (a boot server's) and
# debian-packages-test.txt (the lab's, tests' and benchmarks') that are missing.
# Services those packages ship (tgt, tftpd-hpa) are kept from starting on the
# host: netboot starts its own daemons, on its own addresses, when it needs them.
set -eu
lists="$(dirname "$0")/../debian-packages.txt $(dirname "$0")/../debian-packages-test.txt"
# ARM64 clients boot Debian's arm64 GRUB, kernel and programs, fetched with
# `apt-get download PKG:arm64` (never installed): apt must know the architecture.
foreign=arm64
added=""
if ! dpkg --print-foreign-architectures | grep -qx "$foreign"; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: apt does not know $foreign packages; run 'make setup' as root" >&2
        exit 1
    fi
    echo "setup: dpkg --add-architecture $foreign"
    dpkg --add-architecture "$foreign"
    added=1
fi
missing=""
for pkg in $(cat $lists | grep -v "^#"); do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    [ -n "$added" ] && apt-get update -q
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages:$missing; run 'make setup' as root" >&2
    exit 1
fi
echo "setup: installing Debian packages:$missing"
policy=/usr/sbin/policy-rc.d
created=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created=1
fi
trap '[ -n "$created" ] && rm -f "$policy"' EXIT
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
# Installing keepalived, Kea or Prometheus enables its unit (policy-rc.d only stops it
# starting now): it would start at the next boot with Debian's config. netboot runs its own
# keepalived, the DHCP benchmark its own Kea, in namespaces; the tests need only promtool.
for unit in keepalived kea-dhcp4-server prometheus; do
    case " $missing " in *" $unit "*)
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --quiet "$unit.service" || true
        fi
        rm -f "/etc/systemd/system/multi-user.target.wants/$unit.service" ;;
    esac
done
# openipmi's init script loads the host's own IPMI drivers at boot; the lab and the tests use
# only its ipmi_sim
case " $missing " in *" openipmi "*)
    if command -v update-rc.d >/dev/null 2>&1; then update-rc.d openipmi disable >/dev/null 2>&1 || true; fi ;;
esac
