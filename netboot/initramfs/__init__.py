"""The shared base initramfs: busybox, iscsistart with its libraries, kernel modules and /init.

One image serves every client; what differs per client (addresses, IQNs,
CHAP secrets) is in the small part :mod:`netboot.clientpart` builds.
"""
