"""One module per `chibi` subcommand.

Each module has `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Heavy imports (torch, mediapipe, pyrender) belong inside `run`, so `chibi --help`
stays fast.
"""
