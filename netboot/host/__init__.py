"""The machine netboot runs on: its files and its network links."""
