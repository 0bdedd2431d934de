"""A floating iSCSI portal shared by two netboot servers, and fencing before a takeover.

keepalived (VRRP, both servers ``state BACKUP`` with ``nopreempt``) elects the server that
holds ``target.portal_address``; it only elects: its notify script calls back into netboot
(``netboot target portal-notify``), which carries out what :mod:`.decide` says. Taking the
portal over is, in this order: fence the peer in Ceph (:mod:`.fence`: blocklist every
client from its storage address, then wait for that osdmap), add the floating address
and announce it (:mod:`.address`). Each server's tgtd runs all the time, bound to the
floating address only (``ip_nonlocal_bind``), exporting every client's RBD image, so
the server taking over serves at once: the exclusive lock of each image passes to it
immediately because the dead holder is blocklisted (unfenced, a dead watch holds it
~30 s). :mod:`.keepalived` renders keepalived's files and runs it; :mod:`.portal` ties
the parts together for ``netboot serve``.
"""
