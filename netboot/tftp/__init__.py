"""netboot's TFTP server: tftpy's packet codec, netboot's loop, limits and per-client rules.

- :mod:`packets`: the wire format (tftpy's codec, with its parse faults fixed);
- :mod:`options`: blksize, tsize, timeout and windowsize negotiation;
- :mod:`transfer`: one read transfer as ``step(state, event, now) -> (state, packets)``;
- :mod:`server`: the epoll loop; :mod:`workers`: several loops sharing the port;
- :mod:`cache`: boot files in memory for the loop.
"""
