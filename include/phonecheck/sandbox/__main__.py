"""``python -m phonecheck.sandbox [--host 127.0.0.1] [--port 8089] [--profile strict]``: run the vendor sandbox.

Prints the base URL, the vendor hosts and the credentials it accepts, then serves until stopped.
``SANDBOX_HOST`` / ``SANDBOX_PORT`` set the defaults of ``--host`` / ``--port``.
"""

from __future__ import annotations

import argparse
import os
import sys

from phonecheck.sandbox.config import SandboxConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phonecheck.sandbox", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8089")))
    parser.add_argument(
        "--vendor-minute-seconds",
        type=float,
        default=SandboxConfig.vendor_minute_s,
        help="real seconds per vendor minute (push retry schedule); default %(default)s",
    )
    parser.add_argument(
        "--accuauth-seconds-per-poll", type=float, default=SandboxConfig.accuauth_seconds_per_poll
    )
    parser.add_argument(
        "--profile", choices=("default", "strict"), default="default", help="docs/sandbox.md; %(default)s"
    )
    parser.add_argument(
        "--strict-query-interval-seconds",
        type=float,
        default=SandboxConfig.strict_query_min_interval_s,
        help="strict profile: seconds between two query calls of one accessKey (documented: %(default)s)",
    )
    parser.add_argument(
        "--push-concurrency", type=int, default=SandboxConfig.push_concurrency, help="pushes in flight"
    )
    parser.add_argument(
        "--log-limit", type=int, default=SandboxConfig.log_limit, help="entries kept in the call/push logs"
    )
    parser.add_argument("--voice-dr-url", default=None, help="where voice receipts are pushed")
    parser.add_argument("--pns-push-url", default=None, help="where PNS call records are pushed")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    config = SandboxConfig(
        vendor_minute_s=args.vendor_minute_seconds,
        accuauth_seconds_per_poll=args.accuauth_seconds_per_poll,
        voice_dr_url=args.voice_dr_url,
        pns_push_url=args.pns_push_url,
        profile=args.profile,
        strict_query_min_interval_s=args.strict_query_interval_seconds,
        push_concurrency=args.push_concurrency,
        log_limit=args.log_limit,
    )
    base = f"http://{args.host}:{args.port}"
    print(
        f"vendor sandbox: {base}\n"
        f"  NXCLOUD host   {base}/nxcloud   accessKey={config.nxcloud_access_key} "
        f"accessSecret={config.nxcloud_access_secret} appkey={config.nxcloud_appkey} "
        f"voice secretkey={config.nxcloud_voice_secretkey}\n"
        f"  AccuAuth host  {base}/accuauth  X-DF-API-ID={config.accuauth_api_id} "
        f"X-DF-API-SECRET={config.accuauth_api_secret}\n"
        f"  control        {base}/_sandbox  (health, reset, faults, clock, settings, calls, pushes)\n"
        f"  one vendor minute = {config.vendor_minute_s:g} s; profile {config.profile}",
        flush=True,
    )

    import uvicorn

    from phonecheck.sandbox.app import create_app

    uvicorn.run(
        create_app(config), host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
