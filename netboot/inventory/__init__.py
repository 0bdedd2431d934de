"""The inventory: registered clients, LUN records, boot stages, in one SQLite database."""
