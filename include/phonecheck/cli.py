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


def cmd_erase(args: argparse.Namespace) -> int:
    """Erase numbers everywhere (the CLI twin of the DAG phone_data_erasure)."""
    import getpass

    from phonecheck.privacy.erasure import erase_numbers, parse_numbers

    numbers = list(args.numbers)
    if args.numbers_file:
        text = (
            sys.stdin.read() if args.numbers_file == "-" else open(args.numbers_file, encoding="utf-8").read()
        )
        numbers += parse_numbers(text)
    report = erase_numbers(
        warehouse.resolve_dsn(),
        numbers,
        reason=args.reason,
        dry_run=args.dry_run,
        requested_by=f"cli:{getpass.getuser()}",
    )
    print(report.describe())
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """Enforce the retention windows once (the CLI twin of the DAG phone_data_retention)."""
    from phonecheck.privacy.retention import enforce_retention

    print(enforce_retention(warehouse.resolve_dsn(), dry_run=args.dry_run).describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phonecheck")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending warehouse migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="run the main job on embedded defaults").set_defaults(func=cmd_demo)
    erase = sub.add_parser(
        "erase",
        help="erase phone numbers everywhere (warehouse, spool, Data Docs), logged by pseudonym",
        description="Numbers on the command line end up in your shell history: prefer --numbers-file.",
    )
    erase.add_argument("numbers", nargs="*", help="numbers to erase (E.164 preferred)")
    erase.add_argument("--numbers-file", help="a file with one number per line ('-' = stdin)")
    erase.add_argument("--reason", required=True, help="why (e.g. the request's reference)")
    erase.add_argument("--dry-run", action="store_true", help="only count what would be erased")
    erase.set_defaults(func=cmd_erase)
    retention = sub.add_parser("retention", help="expire data past its retention window now")
    retention.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    retention.set_defaults(func=cmd_retention)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
