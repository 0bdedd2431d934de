"""netboot's TFTP server: tftpy's packet codec, netboot's loop, limits and per-client rules.

- :mod:`packets`: the wire format (tftpy's codec, with its parse faults fixed);
- :mod:`options`: blksize, tsize, timeout and windowsize negotiation;
- :mod:`transfer`: one read transfer as ``step(state, event, now) -> (state, packets)``;
- :mod:`server`: the service and its epoll loop; :mod:`workers`: several loops sharing the port;
- :mod:`sessions`: the transfers in flight, by address, by descriptor and by deadline;
- :mod:`fastpath`: the lock-step shortcut for the awaited ACK, and the busy-poll;
- :mod:`cache`: boot files in memory for the loop.
"""
