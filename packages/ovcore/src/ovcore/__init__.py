"""ovcore."""
