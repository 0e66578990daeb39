"""The sandbox HTTP app: NXCLOUD under ``/nxcloud``, AccuAuth under ``/accuauth``, control under ``/_sandbox``.

One router per job (:mod:`~phonecheck.sandbox.nxcloud`, :mod:`~phonecheck.sandbox.accuauth`,
:mod:`~phonecheck.sandbox.control`); this module only gives them a run state and starts the
background work. See the package docstring (:mod:`phonecheck.sandbox`) for the wire contract.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from phonecheck.sandbox import accuauth, control, nxcloud
from phonecheck.sandbox.config import SandboxConfig
from phonecheck.sandbox.state import SandboxState


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build the sandbox app. One app, one run state; ``POST /_sandbox/reset`` starts a new run."""
    state = SandboxState(config or SandboxConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start()
        # pending AccuAuth tasks also finish (and call back) by time, not only when polled
        ticker = asyncio.create_task(state.run_task_ticker(lambda task: accuauth.finish_task(state, task)))
        try:
            yield
        finally:
            ticker.cancel()
            await state.stop()

    app = FastAPI(title="phonecheck vendor sandbox (NXCLOUD + AccuAuth)", lifespan=lifespan)
    app.state.sandbox = state  # read by the routers through phonecheck.sandbox.wire.Sandbox
    app.include_router(nxcloud.router)
    app.include_router(accuauth.router)
    app.include_router(control.router)
    return app
