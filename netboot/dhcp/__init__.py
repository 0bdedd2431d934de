"""netboot's DHCP server (RFC 2131 with PXE, proxyDHCP and relays) and its IPv6 RA responder.

options.py names every wire number; packet.py parses and encodes (struct on
the hot path, scapy for the readable definition and odd packets); modifiers.py
builds replies from small pure steps; boot.py picks the boot file and dresses
the reply for it; decide.py is the whole judgement, without I/O; leases.py
keeps dynamic leases in the inventory; prepared.py reuses replies to
registered clients; service.py is the socket loop; ra.py answers router
solicitations (with the M flag when DHCPv6, :mod:`netboot.dhcp6`, gives the addresses).
"""
