"""The sidecar process: aiohttp server, filter chain, forwarding, admin API, CLI and the wiring of all parts."""
