"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a spec, a flag, a file. The message names what is wrong and what is allowed."""


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(table: dict, allowed, where: str, shown=None) -> None:
    """Refuse a key of `table` that is not in `allowed`: 'unknown key search.'x' (did you mean
    ...); allowed: ...'. `where` prefixes the key ("search." or ""); `shown` is the allowed list
    as printed (default: `allowed`)."""
    for k in table:
        if k not in allowed:
            raise UserError(f"unknown key {where}{k!r}{did_you_mean(k, allowed)}; allowed: "
                            f"{', '.join(shown if shown is not None else allowed)}")
