"""The HTTP API: one aiohttp app, one module per OpenStack service."""
