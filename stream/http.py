"""HTTP views: ``/metrics``, ``/healthz``, ``/readyz`` and ``POST /v1/moderations``.

``/v1/moderations`` takes OpenAI's request (``{"input": str | [str]}``) and
answers OpenAI's response shape, scored by the same classifier and policy
as the stream. Errors are JSON with a 4xx status and a short message; no
stack trace ever reaches a client. The body is read up to a size limit, and
an optional bearer token guards the endpoint.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import orjson
from prometheus_client import generate_latest
from pydantic import ValidationError

from classifiers.api import TextClassifier
from stream.logs import get_logger
from stream.metrics import Metrics
from stream.policy import Policy
from stream.schemas import ModerationRequest
from stream.settings import HttpSettings

log = get_logger(__name__)

#: aiohttp refuses a charset inside content_type; Prometheus reads this fine.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"


class ModerationService:
    """Scores request texts on a thread of its own, so the event loop keeps serving."""

    def __init__(self, classifier: TextClassifier, policy: Policy) -> None:
        self.classifier = classifier
        self.policy = policy
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="modstream-http")

    async def moderate(self, texts: list[str]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        scores = await loop.run_in_executor(self._pool, self.classifier.score, texts)
        return [result for _, result in self.policy.results(scores)]


def _error(view: faust.web.View, status: int, message: str, kind: str) -> Any:
    return view.json({"error": {"message": message, "type": kind}}, status=status)


def register_views(
    app: faust.App,
    settings: HttpSettings,
    metrics: Metrics,
    service: ModerationService,
    is_ready: Callable[[], bool],
    model_id: str,
) -> None:
    """Attach the four endpoints to a Faust app's web server."""
    token = settings.auth_token()
    max_bytes = settings.http_max_request_bytes

    @app.page("/healthz")
    async def healthz(self: faust.web.View, request: Any) -> Any:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: faust.web.View, request: Any) -> Any:
        ready = is_ready()
        return self.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_view(self: faust.web.View, request: Any) -> Any:
        return self.bytes(generate_latest(metrics.registry), content_type=PROMETHEUS_CONTENT_TYPE)

    @app.page("/v1/moderations")
    class Moderations(faust.web.View):
        async def post(self, request: Any) -> Any:
            if token is not None:
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return _error(
                        self, 401, "missing or wrong bearer token", "authentication_error"
                    )
            declared = request.content_length
            if declared is not None and declared > max_bytes:
                return _error(self, 413, f"body over {max_bytes} bytes", "invalid_request_error")
            body = await request.content.read(max_bytes + 1)
            if len(body) > max_bytes:
                return _error(self, 413, f"body over {max_bytes} bytes", "invalid_request_error")
            try:
                req = ModerationRequest.model_validate(orjson.loads(body))
            except (orjson.JSONDecodeError, ValidationError, UnicodeDecodeError):
                return _error(
                    self,
                    400,
                    'body must be JSON: {"input": string or list of strings}',
                    "invalid_request_error",
                )
            texts = [req.input] if isinstance(req.input, str) else req.input
            if not texts or len(texts) > settings.http_max_inputs:
                return _error(
                    self,
                    400,
                    f"input must hold 1 to {settings.http_max_inputs} texts",
                    "invalid_request_error",
                )
            try:
                results = await service.moderate(texts)
            except Exception as exc:  # never leak a stack trace to a client
                log.error("moderation_failed", error=type(exc).__name__)
                metrics.errors.labels("http").inc()
                return _error(self, 500, "scoring failed", "server_error")
            return self.json(
                {"id": f"modr-{uuid.uuid4().hex}", "model": model_id, "results": results}
            )
