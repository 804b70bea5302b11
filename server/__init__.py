"""The outer layer: websocket service, the `chibi` command line, batch jobs."""
