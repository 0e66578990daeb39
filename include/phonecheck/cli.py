"""Command-line entry points used by the Makefile (``python -m phonecheck.cli <command>``)."""

from __future__ import annotations

import argparse
import sys

from phonecheck import warehouse


def cmd_migrate(_: argparse.Namespace) -> int:
    dsn = warehouse.resolve_dsn()
    applied = warehouse.migrate(dsn)
    print(
        f"warehouse: {len(applied)} migration(s) applied"
        + "".join(f"\n  V{m.version:04d} {m.name}" for m in applied)
    )
    return 0


def cmd_demo(_: argparse.Namespace) -> int:
    embedded = "WAREHOUSE_DSN" not in __import__("os").environ
    dsn = warehouse.resolve_dsn()
    print(f"warehouse: {'embedded PostgreSQL under .local/pgdata' if embedded else 'WAREHOUSE_DSN'}")
    applied = warehouse.migrate(dsn)
    print(f"migrations applied now: {len(applied)}")
    for schema, name, kind in warehouse.list_tables(dsn):
        print(f"  {kind:5s} {schema}.{name}")
    warehouse.stop_embedded()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phonecheck")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending warehouse migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="run the main job on embedded defaults").set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
