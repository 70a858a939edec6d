"""Errors a user can act on: stages print them as one line and exit with status 2."""


class IpokeError(Exception):
    """Bad input, missing data or weights, or a misconfiguration; the message says what to do."""
