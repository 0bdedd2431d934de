"""Registering and removing clients: identity (names, addresses, CHAP), the root LUN, extra
LUNs, and what an open-iscsi host needs to use them."""
