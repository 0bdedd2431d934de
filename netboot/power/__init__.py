"""Power control of client machines through their BMC: the records (which BMC, which
action), ipmitool as the adapter that talks IPMI over the LAN, and on/off/cycle/status
built from its commands."""
