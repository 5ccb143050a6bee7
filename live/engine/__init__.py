"""The live engine: sessions, turns and the speech stage, in typed events."""
