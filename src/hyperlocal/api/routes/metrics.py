"""``GET /metrics``: Prometheus' text format, for an admin key (or anyone, with
``HYPERLOCAL_METRICS_PUBLIC``). A bind of its own, open to whoever reaches it, is
``HYPERLOCAL_METRICS_BIND`` (``prometheus.MetricsServer``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hyperlocal.api.deps import Svc, authenticate
from hyperlocal.core import keys
from hyperlocal.core.metrics import snapshot
from hyperlocal.errors import NotFoundError
from hyperlocal.prometheus import CONTENT_TYPE_LATEST, PrometheusMetrics

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, svc: Svc) -> Response:
    recorded = svc.metrics
    if not isinstance(recorded, PrometheusMetrics):
        raise NotFoundError("Metrics are off (HYPERLOCAL_METRICS=false)")
    if not svc.settings.metrics_public:
        key, _ = await authenticate(request, svc)
        keys.require_admin(key)
    body = recorded.render(await snapshot(svc.db, (entry.id for entry in svc.catalog)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
