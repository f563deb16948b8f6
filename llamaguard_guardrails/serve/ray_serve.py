"""The same app as a Ray Serve deployment: each replica loads the guard once and serves ``create_app`` on it.

    from ray import serve
    from llamaguard_guardrails.serve.ray_serve import guard_deployment

    app = guard_deployment("meta-llama/Llama-Guard-4-12B", num_replicas=2, ray_actor_options={"num_gpus": 1})
    serve.run(app, route_prefix="/")          # POST http://<ray-head>:8000/v1/moderations

Autoscaling instead of a fixed count: ``autoscaling_config={"min_replicas": 1, "max_replicas": 8,
"target_ongoing_requests": 16}`` (a replica coalesces concurrent requests into batches, so let each hold
several). ``max_ongoing_requests`` (default 64 here) bounds what Ray queues at one replica; beyond the app's own
``max_pending`` a replica answers 429. Needs ``ray[serve]`` (the ``ray-serve`` extra). Kubernetes: a KubeRay
``RayService`` runs the same application (README, Serve: "On Ray Serve and KubeRay").
"""

from __future__ import annotations

from typing import Any

from .settings import ServeSettings


class GuardReplica:
    """One replica: the guard, loaded in the constructor (the replica is healthy only once it is loaded)."""

    def __init__(self, model: str, settings: ServeSettings | None = None, guard_options: dict[str, Any] | None = None):
        from ..guard import LlamaGuard

        self.settings = settings or ServeSettings()
        self.guard = LlamaGuard.from_pretrained(model, **(guard_options or {}))

    def __serve_build_asgi_app__(self) -> Any:  # Ray Serve's hook: the ASGI app of this replica
        from .app import create_app

        return create_app(self.guard, self.settings)

    def __del__(self) -> None:
        guard = getattr(self, "guard", None)
        if guard is not None:
            guard.close()


def guard_deployment(
    model: str,
    *,
    settings: ServeSettings | None = None,
    guard_options: dict[str, Any] | None = None,
    name: str = "llamaguard",
    **deployment_options: Any,
) -> Any:
    """A bound Ray Serve application serving ``model`` (``deployment_options`` go to ``serve.deployment``:
    ``num_replicas``, ``autoscaling_config``, ``ray_actor_options``, ``max_ongoing_requests`` ...)."""
    from ray import serve

    deployment_options.setdefault("max_ongoing_requests", 64)
    deployment_options.setdefault("health_check_period_s", 10)
    ingress = serve.ingress()(GuardReplica)
    deployment = serve.deployment(name=name, **deployment_options)(ingress)
    return deployment.bind(model, settings, guard_options)


def app_from_env(args: dict[str, Any] | None = None) -> Any:
    """The application for a ``serveConfigV2`` ``import_path`` (KubeRay): the model from ``LLAMAGUARD_MODEL``, API
    keys from ``LLAMAGUARD_API_KEYS``; the deployment options come from the Serve config."""
    import os

    from .settings import api_keys_from_env

    model = (args or {}).get("model") or os.environ.get("LLAMAGUARD_MODEL")
    if not model:
        raise ValueError("set LLAMAGUARD_MODEL (a model folder or Hugging Face id) or pass args={'model': ...}")
    return guard_deployment(model, settings=ServeSettings(api_keys=api_keys_from_env()))
