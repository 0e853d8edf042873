"""One filter per module. Each takes its dependencies in its constructor; see proxy.dataplane.chain."""
