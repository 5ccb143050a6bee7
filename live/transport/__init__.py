"""WebSocket and HTTP endpoints: authentication, framing, limits."""
