"""Errors a user can act on: each says what is wrong and what to do about it."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """Base class: the CLI prints these without a traceback."""


class UnknownNameError(BenchError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataMissingError(BenchError, FileNotFoundError):
    pass


class ChecksumError(BenchError, ValueError):
    pass


class UnsafeArchiveError(BenchError, ValueError):
    pass


class CorruptImageError(BenchError, ValueError):
    pass


class InvalidParameterError(BenchError, ValueError):
    pass


class WeightsUnavailableError(BenchError, RuntimeError):
    pass


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    known = (f"Known {kind}s: {', '.join(choices)}." if len(choices) <= 40 else
             f"{len(choices)} {kind}s are known (timm.list_models() lists them).")
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} {known}")
