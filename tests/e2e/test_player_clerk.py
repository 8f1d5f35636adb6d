"""The player's Clerk mode, with Clerk's script stood in for.

Clerk's cloud cannot be reached here, so the browser is given a stand-in for
`clerk.browser.js` behind the same interface the player uses (`load`,
`addListener`, `redirectToSignIn`, `user`, `session.getToken`), served from the
Frontend API host the publishable key names. The page runs under the
Content-Security-Policy the gateway sends in Clerk mode, so the test also shows
that policy lets exactly that host's script in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from studio_devstack.gateway import content_security_policy

FRONTEND_HOST = "clerk.studio-e2e.test"
KEY = "pk_test_" + base64.b64encode(f"{FRONTEND_HOST}$".encode()).decode()
WAIT_MS = 30_000

FAKE_CLERK_JS = """
window.__clerk = {redirects: [], loads: 0};
window.Clerk = {
  user: null,
  session: null,
  _listeners: [],
  async load() { window.__clerk.loads += 1; },
  addListener(fn) { this._listeners.push(fn); },
  redirectToSignIn(opts) { window.__clerk.redirects.push(opts.redirectUrl); },
  async signOut() { this.user = null; this.session = null; this._listeners.forEach((f) => f({})); },
  // What Clerk does after its hosted sign-in returns: a user and a session appear.
  __signIn(user, token) {
    this.user = user;
    this.session = { async getToken() { return token; } };
    this._listeners.forEach((f) => f({ user }));
  },
};
"""


@pytest.fixture
def clerk_page(browser: Any, stack: Any) -> Any:
    # The real Content-Security-Policy is enforced here (no bypass).
    context = browser.new_context()
    page = context.new_page()
    clerk_csp = content_security_policy(KEY)

    def document(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": clerk_csp}
        route.fulfill(response=response, headers=headers)

    page.route(stack.gateway_url + "/", document)
    page.route(
        "**/player/config.json",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"auth": "clerk", "clerkPublishableKey": KEY}),
        ),
    )
    page.route(
        f"https://{FRONTEND_HOST}/**",
        lambda route: route.fulfill(
            status=200,
            content_type="application/javascript",
            headers={"access-control-allow-origin": "*"},
            body=FAKE_CLERK_JS,
        ),
    )
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.violations = violations  # type: ignore[attr-defined]
    yield page
    context.close()


def test_clerk_mode_signs_in_through_clerk_and_calls_the_api_with_its_token(
    clerk_page: Any, stack: Any
) -> None:
    page = clerk_page
    page.goto(stack.gateway_url + "/")
    page.wait_for_selector("#clerk-signin", state="visible", timeout=WAIT_MS)
    assert page.evaluate("window.__clerk.loads") == 1
    # Development sign-in is not offered in Clerk mode.
    assert page.is_hidden("#dev-signin")

    page.click("#clerk-signin")
    assert page.evaluate("window.__clerk.redirects") == [page.url]

    # Back from the hosted sign-in: the player takes Clerk's session token and
    # the services accept it (the same verifier checks Clerk's and the dev issuer's tokens).
    email = "clerk-user@e2e.studio.test"
    token = stack.token("viewer", email)
    page.evaluate(
        "([email, token]) => window.Clerk.__signIn({id: 'user_clerk', primaryEmailAddress: {emailAddress: email}}, token)",
        [email, token],
    )
    page.wait_for_selector('body[data-signed-in="true"]', timeout=WAIT_MS)
    page.wait_for_function(
        "(email) => document.getElementById('auth-user').textContent.includes(email)",
        arg=email,
        timeout=WAIT_MS,
    )
    assert page.is_hidden("#clerk-signin")
    assert page.violations == []  # type: ignore[attr-defined]
