"""Power control of client machines through their BMC: the records (which BMC, which
action), a driver per kind of BMC (ipmitool for IPMI over the LAN, sushy for Redfish over
HTTPS), and on/off/cycle/status built the same way on either."""
