"""The gateway: the public HTTP API on :8000, the WebSocket hub, the /index page."""
