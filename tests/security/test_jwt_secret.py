"""Placeholder and guessable JWT secrets stop every token-checking service at start, with a message
that says why and what to do; the values this repository ships are all refused."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from dataclasses import replace

import pytest

from auction_shared.config import ConfigError, Settings
from tests.deploy import manifests

SHIPPED = {
    ".env.example": manifests.env_example()["JWT_SECRET"],
    "deploy/k8s/secret.example.yaml": manifests.k8s_kind("Secret")["auction-secrets"]["stringData"][
        "JWT_SECRET"
    ],
    # The old defaults of docker-compose.yml and .env.example: still refused wherever they were copied.
    "old compose default": "insecure-local-development-placeholder-set-JWT_SECRET-in-.env",
    "old .env.example": "replace-me-with-the-output-of-openssl-rand-hex-32",
}
GUESSABLE = {
    "empty": "",
    "short": "s3cr3t",
    "one letter": "a" * 64,
    "a pattern": "0123456789abcdef" * 4,
    "few letters": "abcabcabcabcabcabcabcabcabcabcabcabcab",
    "changeme": "changeme-changeme-changeme-changeme",
    "your-": "your-jwt-signing-key-goes-here-please-1234",
}


@pytest.mark.parametrize("where", sorted(SHIPPED))
def test_every_shipped_example_secret_is_refused(where: str) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET is refused: it looks like a placeholder"):
        replace(Settings(), jwt_secret=SHIPPED[where]).require_jwt_secret()


@pytest.mark.parametrize("kind", sorted(GUESSABLE))
def test_guessable_secrets_are_refused(kind: str) -> None:
    with pytest.raises(ConfigError, match="openssl rand -hex 32"):
        replace(Settings(), jwt_secret=GUESSABLE[kind]).require_jwt_secret()


def test_random_secrets_as_the_docs_make_them_are_accepted() -> None:
    for _ in range(200):
        for value in (secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)):
            assert replace(Settings(), jwt_secret=value).require_jwt_secret() == value


def test_compose_has_no_default_secret_to_fall_back_on() -> None:
    uses = manifests.interpolation_uses(manifests.COMPOSE_FILE.read_text())
    assert {op for name, op, _ in uses if name == "JWT_SECRET"} == {":?"}


@pytest.mark.parametrize("module", ["auth", "offers", "bids", "gateway"])
def test_a_service_given_a_placeholder_exits_at_start_saying_why(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["JWT_SECRET"] = SHIPPED[".env.example"]
    done = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "JWT_SECRET is refused: it looks like a placeholder" in done.stderr
    assert SHIPPED[".env.example"] not in done.stderr, "the message must not repeat the secret"
