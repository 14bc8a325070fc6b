"""Create API keys and the API_KEYS entries that store them hashed.

    python -m pixtools_api.api_keys create --id ci
        prints a new random key (give it to the client) and its entry
        ``ci:<sha256 hex>`` (append it to API_KEYS, comma separated).
    python -m pixtools_api.api_keys hash --id ci < key.txt
        prints the entry of an existing key, read from standard input.

The key itself is printed once and stored nowhere; lose it and create another.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence

from pixtools_api.auth import hash_api_key
from pixtools_shared.edge_settings import API_KEY_ID_PATTERN

# 32 random bytes, URL-safe base64: about 43 characters.
KEY_BYTES = 32
KEY_PREFIX = "pxt_"


def generate_key() -> str:
    """Return a new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_entry(key_id: str, key: str) -> str:
    """Return the API_KEYS entry ``id:sha256hex`` of ``key``."""
    return f"{key_id}:{hash_api_key(key)}"


def _key_id(value: str) -> str:
    if not API_KEY_ID_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(
            "an id is 1 to 64 letters, digits, '_', '.' or '-'"
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixtools_api.api_keys",
        description="Create PixTools API keys and their hashed API_KEYS entries.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a random key and its entry")
    create.add_argument("--id", required=True, type=_key_id, help="client name")
    hash_command = commands.add_parser(
        "hash", help="print the entry of a key read from standard input"
    )
    hash_command.add_argument("--id", required=True, type=_key_id, help="client name")
    arguments = parser.parse_args(argv)

    if arguments.command == "create":
        key = generate_key()
        print(f"key:   {key}")
        print(f"entry: {key_entry(arguments.id, key)}")
        return 0

    key = sys.stdin.readline().strip()
    if not key:
        print("error: no key on standard input", file=sys.stderr)
        return 2
    print(key_entry(arguments.id, key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
