"""The sidecar process: aiohttp server, filter chain, forwarding, admin API, CLI, wiring of all parts."""
