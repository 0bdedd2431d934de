"""netboot's DHCPv6 server (RFC 8415) for IPv6 boot VLANs: fixed addresses and boot file URLs.

options.py names every wire number; packet.py parses and encodes messages
(relayed ones too); decide.py is the whole judgement, without I/O;
service.py is the socket loop. Router advertisements with the M flag, which
send clients to DHCPv6, come from :mod:`netboot.dhcp.ra`.
"""
