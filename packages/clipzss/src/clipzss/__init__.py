"""clipzss."""
