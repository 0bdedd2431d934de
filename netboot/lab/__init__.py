"""The lab: an isolated boot VLAN with QEMU clients, for newcomers, end-to-end tests and benchmarks.

Everything it makes (a network namespace, a bridge, taps, the processes in
the namespace) is named from one random prefix recorded in the lab
directory, so `netboot lab down` can remove what a crashed run left behind.
"""
