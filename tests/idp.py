"""A real OpenID provider for the tests: the npm package `oidc-provider`, configured by tests/oidc/provider.mjs.

`make test` installs it (`npm ci --prefix tests/oidc`). The session fixture starts it on a free loopback port
and waits for its discovery document; helpers sign users in through its own login page and mint tokens.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
API_AUDIENCE = "urn:gatewayportal:api"
CI_AUDIENCE = "urn:gatewayportal:ci"
CLIENT_ID = "gateway-portal"
CLIENT_SECRET = "portal-secret"
PLATFORM_GROUP = "platform-engineers"
USERS = {
    "alice": {"email": "alice@example.com", "name": "Alice", "groups": ["payments-devs"]},
    "bob": {"email": "bob@example.com", "name": "Bob", "groups": [PLATFORM_GROUP]},
    "carol": {"email": "carol@example.com", "name": "Carol", "groups": ["search-devs", "payments-devs"]},
}


@dataclass
class Provider:
    issuer: str
    users_file: Path

    def users(self) -> dict:
        return json.loads(self.users_file.read_text())

    @contextlib.contextmanager
    def groups(self, login: str, groups: list[str]) -> Iterator[None]:
        """Changes a user's groups at the IdP for the duration of the block."""
        before = self.users()
        changed = json.loads(json.dumps(before))
        changed[login]["groups"] = groups
        self.users_file.write_text(json.dumps(changed))
        try:
            yield
        finally:
            self.users_file.write_text(json.dumps(before))

    def discovery(self) -> dict:
        return requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5).json()

    def pipeline_token(self, client_id: str, audience: str = CI_AUDIENCE) -> str:
        """A client-credentials JWT carrying the pipeline's repository/ref claims (like a CI identity token)."""
        response = requests.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": audience},
            auth=(client_id, f"{client_id}-secret"),
            timeout=5,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def sign_in(self, session: requests.Session, authorize_url: str, login: str, stop_at: str) -> str:
        """Follows an authorization request through the provider's own login page; returns the redirect to
        `stop_at` (the client's redirect URI) with the code."""
        url = authorize_url
        for _ in range(10):
            response = session.get(url, allow_redirects=False, timeout=5)
            if response.status_code in (302, 303):
                url = urljoin(url, response.headers["Location"])
                if url.startswith(stop_at):
                    return url
                continue
            # The provider's own pages: a login form, then a consent form.
            form = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            assert form, f"no form at {url}: {response.status_code} {response.text[:300]}"
            data = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
            if 'name="login"' in response.text:
                data.update(login=login, password="any")
            response = session.post(
                urljoin(url, unescape(form.group(1))),
                data=data,
                allow_redirects=False,
                timeout=5,
            )
            assert response.status_code in (302, 303), response.text[:300]
            url = urljoin(url, response.headers["Location"])
            if url.startswith(stop_at):
                return url
        raise AssertionError("the provider never redirected back")

    def access_token(self, login: str, audience: str = API_AUDIENCE) -> str:
        """An API access token (JWT, ES256) for a person, through the authorization code flow with PKCE."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        redirect_uri = "http://127.0.0.1/callback"
        params = {
            "client_id": "portal-cli",
            "response_type": "code",
            "scope": "openid api",
            "redirect_uri": redirect_uri,
            "resource": audience,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
        }
        authorize = requests.Request("GET", f"{self.issuer}/auth", params=params).prepare().url
        back = self.sign_in(requests.Session(), authorize, login, stop_at=redirect_uri)
        code = parse_qs(urlsplit(back).query)["code"][0]
        response = requests.post(
            f"{self.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": "portal-cli",
                "code_verifier": verifier,
                "resource": audience,
            },
            timeout=5,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory) -> Iterator[Provider]:
    node = shutil.which("node")
    assert node, "Node.js is missing (apt-get install -y nodejs npm)"
    assert (OIDC_DIR / "node_modules" / "oidc-provider").is_dir(), "run `npm ci --prefix tests/oidc` (make test does)"
    users_file = tmp_path_factory.mktemp("idp") / "users.json"
    users_file.write_text(json.dumps(USERS))
    env = {"PATH": "/usr/bin:/bin", "PORT": "0", "OIDC_USERS_FILE": str(users_file), "NODE_ENV": "test"}
    process = subprocess.Popen(
        [node, str(OIDC_DIR / "provider.mjs")],
        cwd=OIDC_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("issuer "), f"the provider did not start: {line!r}"
        provider = Provider(issuer=line.split()[1], users_file=users_file)
        deadline = time.monotonic() + 20
        while True:
            try:
                if provider.discovery().get("issuer") == provider.issuer:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the provider's discovery document never answered"
            time.sleep(0.1)
        yield provider
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sso(settings, oidc_provider: Provider) -> Iterator[Provider]:
    """The portal configured for the test provider."""
    from services.identity import discovery

    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_API_AUDIENCE = API_AUDIENCE
    settings.OIDC_PLATFORM_GROUPS = [PLATFORM_GROUP]
    settings.OIDC_SCOPES = "openid email profile groups"
    discovery.reset()
    yield oidc_provider
    discovery.reset()
