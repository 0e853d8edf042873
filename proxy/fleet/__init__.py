"""Several data-plane processes on one host behind one port (`outrider run --workers N`, docs/scale-out.md).

`supervisor` runs the control side (controllers, state keeper, webhook, the host's admin port) and starts the
workers (`workers`); each worker is a whole data plane on the shared port (`port`, SO_REUSEPORT) that follows
the stored experiment states (`state_watch`). `leader` says which process of a data dir may judge;
`metrics_merge` and `fleet_metrics` make one /metrics of the host; `worker` is a worker's end of the link.
"""
