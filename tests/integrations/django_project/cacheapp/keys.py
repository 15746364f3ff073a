"""A KEY_FUNCTION for the tests: recognisably different from Django's default."""


def reversed_key(key: str, key_prefix: str, version: int) -> str:
    """``<key reversed>|<version>|<prefix>``."""
    return f"{key[::-1]}|{version}|{key_prefix}"
