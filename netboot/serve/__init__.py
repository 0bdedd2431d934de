"""`netboot serve`: the Service protocol, which services a config asks for, and supervision."""
