"""The boot OS: the Debian kernel and the shared base initramfs (busybox, iscsistart with its
libraries, the kernel's modules, /init).

One image serves every client; what differs per client (addresses, IQNs,
CHAP secrets) is in the small part :mod:`netboot.boot.clientpart` builds.
"""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"  # /init's template, client.conf's, the module list
