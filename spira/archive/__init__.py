"""The patient archive's retention: `spira archive purge` deletes uploads older than their declared period."""
