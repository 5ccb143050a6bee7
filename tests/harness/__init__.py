"""Test harness: a fake OpenAI-compatible provider server and a booted AstrBot."""
