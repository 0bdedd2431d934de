"""The inventory: registered clients, LUN records, boot stages; SQLite or PostgreSQL."""
