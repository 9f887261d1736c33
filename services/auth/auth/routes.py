"""The auth service's route table."""

from aiohttp import web

from . import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/signup", handlers.signup)
    app.router.add_post("/v1/login", handlers.login)
    app.router.add_get("/health", handlers.health)
