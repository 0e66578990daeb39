"""Vendor sandbox: a faithful local NXCLOUD + AccuAuth over real HTTP.

Used by the tests (``tests/fixtures/sandbox.py``), by ``make demo`` and on its own by
``make sandbox`` (= ``python -m phonecheck.sandbox [--host 127.0.0.1] [--port 8089]
[--vendor-minute-seconds 1] [--voice-dr-url URL] [--pns-push-url URL]``, which prints its base
URL and the credentials it accepts). In code: ``phonecheck.sandbox.app.create_app(SandboxConfig())``.
Outcomes are a pure function of the number: :mod:`phonecheck.sandbox.outcomes` (table in its
docstring) predicts every push and query row.

Credentials (``SandboxConfig``, defaults):
  NXCLOUD accessKey ``sandbox-access-key``, accessSecret ``sandbox-access-secret``, appkey
  ``sandbox-appkey`` (``sandbox-foreign-appkey`` = another customer's: code 210), voice
  ``secretkey`` ``sandbox-voice-secretkey``. AccuAuth ``X-DF-API-ID: sandbox-api-id``,
  ``X-DF-API-SECRET: sandbox-api-secret`` (``sandbox-expired-api-id`` answers 401 KEY_EXPIRED).

NXCLOUD, connection host ``http://HOST:PORT/nxcloud`` (hooks append the vendor paths):
  ``POST /nxcloud/api/number/check`` and ``POST /nxcloud/api/number/query``: signed (headers
  accessKey, ts, bizType ``1``, action ``numbercheck``, sign; optional ``algorithm: sha256``),
  verified on the body bytes exactly as received; ``ts`` in ms within ±60 s of the sandbox
  clock. Refusals: 1001 missing header, 1005 unknown accessKey, 1004 ts, 1003 sign (wrong
  secret, changed body, non-JSON Content-Type), 1002 wrong bizType/action or algorithm,
  checked in that order. **Every vendor code is answered with HTTP 200** (the vendor does not
  document the status; ``code != 0`` is the error signal), except injected faults.
  Submit: JSON ``phone`` (comma list, <= 5000), ``batchNo`` (<= 64, else 212; 12 random digits
  if omitted), ``checkLevel`` 1/4/5 (else 207), ``drUrl``, ``appkey`` (202/210); 201 for a
  missing or malformed field. Answer ``{"code":0,"msg":"success","data":{"messageId","batchNo"}}``.
  Each number gets ONE result push to ``drUrl`` (NXCLOUD result-push doc shape, JSON POST), retried on any
  non-200 every vendor minute for 60 vendor minutes (61 attempts), then given up; one vendor
  minute = ``vendor_minute_s`` real seconds (1 s by default, 0.05 s in tests). Pushes run as
  a stream with at most ``push_concurrency`` in flight (:mod:`phonecheck.sandbox.pushes`). Header ``X-Sandbox-Push-Shape:
  2024`` on a submit (or setting ``push_shape``) switches that batch to the 2024 protocol
  (``requestId``/``message``, flat ``data``, ``failNumber`` for malformed numbers, ``traceId``).
  Query: ``page``, ``pageSize`` 1..100, ``date`` yyyy-MM-dd 0..14 days before the sandbox's UTC
  date (15 refused), ``batchNo`` or ``messageId`` (alias ``requestId``; a submit's request id
  matches all its numbers) required, optional ``phone``/``appkey``; refusals are code 88 with the
  reason in ``msg`` (bad date: ``Incorrect date format [yyyy-MM-dd]`` as in NXCLOUD query-API doc), 202, 210.
  Rows (NXCLOUD query-API doc fields, plus early/answered/response for checkLevel 4) come in submit order
  and carry the same values as the pushes, including for pushes that were dropped or given up.
  Rate limit (``query_min_interval_s``, default 0 = off; under the strict profile at least
  ``strict_query_min_interval_s``, default 3 s as the newer docs say): a query too soon after
  the previous accepted one of the same accessKey is answered HTTP 200 code 88 ``Request too
  frequent: at most one query every 3 s``.
  A repeated ``batchNo`` (same appkey) is answered like its first submit and not charged again;
  every charged number is in the charge ledger (``GET /_sandbox/charges``).
  Strict profile (``profile: "strict"``; docs/sandbox.md): a 5xx, slow or ``disconnect`` fault
  on a submit comes AFTER the batch was accepted and charged; a repeated ``batchNo`` is charged
  and pushed again; the query API lists a batch only ``strict_query_lag_minutes`` vendor minutes
  after its submit, with rows shaped like the vendor's own example (``checkLevel`` 2, ``""`` live
  flags, ``price`` 0); code 88 texts are Chinese; ``date`` is the Asia/Shanghai day.
  Voice: ``POST /nxcloud/api/voiceSms/{gpsend,notsend,versend}`` form-encoded ``appkey`` +
  ``secretkey`` (code "1" when wrong), ``phone``, ``country_code``, ``url`` (gpsend) or
  ``content``; answers ``{"result":"Success","messageid","code":"0"}`` and pushes ONE
  form-encoded receipt per phone (NXCLOUD voice-receipt doc fields) to ``voice_dr_url`` (setting, CLI flag, or
  header ``X-Sandbox-Dr-Url``), never retried; ``success`` in the answer body counts as taken.

AccuAuth, connection host ``http://HOST:PORT/accuauth``:
  ``POST /accuauth/check/phone_number/o1`` (``phone_number``, optional ``callback``) and
  ``POST /accuauth/check/phone_number/task_result/o1`` (``task_id``); bodies form-encoded,
  multipart or JSON. Submit answers ``OK`` + ``result`` at once, or ``OK`` + ``task_id`` when
  the number is pending (``outcomes.accuauth_pending_polls``). ``task_result`` answers HTTP 400
  ``PENDING`` until the task finishes, then ``OK`` + ``result``. A task finishes at whichever
  comes first: its pending polls were answered, or its time passed on the sandbox clock
  (``accuauth_pending_seconds``, default polls x ``accuauth_seconds_per_poll``; setting
  ``accuauth_pending_seconds=0`` with ``accuauth_pending_polls=N`` = polls only). When a pending
  task finishes, its ``callback`` gets ONE HTTP GET with ``request_id``, ``phone_number``,
  ``phone_status``, ``task_id``. Task ids expire 24 sandbox hours after submit. Errors: 400
  INVALID_ARGUMENT (missing/invalid argument, unknown or expired ``task_id``), 401 UNAUTHORIZED /
  KEY_EXPIRED, 403 NO_PERMISSION / OUT_OF_QUOTA / RATE_LIMIT_EXCEEDED (faults), 404 NOT_FOUND
  (any other path), 500 INTERNAL_ERROR (faults); each ``{"status","reason","request_id"}``.

Control, under ``/_sandbox`` (tests assert on the wire through these):
  ``GET health`` (``now_ms``, ``in_flight_pushes``, ``pending_tasks``) · ``POST reset`` (new
  run: results, logs, faults, skew and settings back to start) · ``POST wait``
  ``{"timeout_s"}`` (until no push is in flight) · ``GET|POST faults`` (rules: see
  :mod:`phonecheck.sandbox.faults`; per call also header ``X-Sandbox-Fault``) · ``GET|POST clock``
  (``offset_s`` skew, ``advance_s`` jump, ``set_ms``) · ``GET|POST settings`` (any
  ``SandboxConfig`` field for this run) · ``GET calls`` (every vendor call: event, path, headers
  incl. ts/sign, body, status, answer; ``X-DF-API-SECRET`` and ``secretkey`` masked; filters
  ``event``, ``path``, ``since``) · ``GET charges`` (NXCLOUD charge ledger: one entry per number
  per charged submit; filter ``batch_no``) · ``GET pushes`` (every push attempt: kind, url, body, status,
  answer, attempt, outcome accepted/retry/gave_up/refused/dropped/duplicate, batch_no, phone;
  filters ``kind``, ``url``, ``batch_no``, ``since``) · ``POST pns/call`` (place a simulated
  privacy-number call: ``caller``, ``callee``, ``did``, ``url`` or setting ``pns_push_url``,
  ``shape: "legList"`` for the 2024 shape; its NXCLOUD call-record doc call record is pushed and retried like
  number-check results).
"""
