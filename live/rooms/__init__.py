"""Live rooms: shared sessions for streams, and their viewer queue."""
