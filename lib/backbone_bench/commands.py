"""Subcommands for the study itself (run, cost, study); registered by cli.build_parser."""


def register(sub) -> None:
    pass
