"""Live Mode: real-time voice conversations for AstrBot."""

PROTOCOL_VERSION = 1
