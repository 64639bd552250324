"""The web service: SendGrid's signed Event Webhook, one-click unsubscribe, the preference centre, the ask's answers."""

from __future__ import annotations

from pipeline.web.app import create_app, open_web_database, running_server, serve

__all__ = ["create_app", "open_web_database", "running_server", "serve"]
