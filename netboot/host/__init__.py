"""The machine netboot runs on: its tools, its files and its network links."""
