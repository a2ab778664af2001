"""One module per ``archcount`` subcommand; each defines ``add_parser(subparsers)``."""
