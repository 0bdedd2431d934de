"""The HTTP server iPXE and /init talk to."""
