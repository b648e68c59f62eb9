"""Admin logins are throttled (issue 26, django-axes): after ADMIN_LOGIN_FAILURES failed
logins for a username from one address, that pair is refused for the cool-off, the right
password included; staff see and lift the lockout in the admin; the address is the
request's own, never a header the client sets."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def clerk() -> User:
    return User.objects.create_user("clerk", password=PASSWORD, is_staff=True)


def log_in(client: Client, username: str, password: str, **headers: str) -> int:
    """The login form posted as a browser would; 302 when let in."""
    data = {"username": username, "password": password, "next": "/admin/"}
    return client.post(LOGIN, data, **headers).status_code


def lock_out(client: Client, username: str = "clerk", **headers: str) -> None:
    for _ in range(4):
        assert log_in(client, username, "wrong", **headers) == 200  # the form, with an error
    # The fifth (ADMIN_LOGIN_FAILURES' default) locks the pair out at once.
    assert log_in(client, username, "wrong", **headers) == 429


def test_five_failures_lock_out_the_user_from_that_address_the_right_password_too(clerk):
    client = Client()
    lock_out(client)
    response = client.post(LOGIN, {"username": "clerk", "password": PASSWORD})
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins for clerk from this address" in page
    assert "after 5 failures" in page
    assert "_auth_user_id" not in client.session


def test_the_lockout_is_the_user_s_at_that_address_only(clerk):
    User.objects.create_user("cashier", password=PASSWORD, is_staff=True)
    lock_out(Client())
    assert log_in(Client(), "cashier", PASSWORD) == 302  # another user, same address
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    assert log_in(elsewhere, "clerk", PASSWORD) == 302  # the same user, another address


def test_a_forwarded_for_header_from_a_client_does_not_change_its_address(clerk):
    lock_out(Client())
    spoofed = Client(headers={"X-Forwarded-For": "198.51.100.23"})
    assert log_in(spoofed, "clerk", PASSWORD) == 429


def test_after_the_cool_off_the_user_is_let_in(clerk, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    client = Client()
    lock_out(client)
    assert log_in(client, "clerk", PASSWORD) == 429
    time.sleep(1.2)
    assert log_in(client, "clerk", PASSWORD) == 302


def test_a_success_clears_the_failures_before_it(clerk):
    client = Client()
    for _ in range(4):
        assert log_in(client, "clerk", "wrong") == 200
    assert log_in(client, "clerk", PASSWORD) == 302
    client.logout()
    for _ in range(4):
        assert log_in(client, "clerk", "wrong") == 200
    assert log_in(client, "clerk", PASSWORD) == 302


def test_staff_see_the_lockout_in_the_admin_and_lift_it(clerk):
    lock_out(Client())
    admin = Client()
    admin.force_login(User.objects.create_superuser("boss", "boss@example.com", "x"))
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "clerk" in listing.content.decode()
    from axes.models import AccessAttempt

    (attempt,) = AccessAttempt.objects.filter(username="clerk")
    deleted = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert log_in(Client(), "clerk", PASSWORD) == 302
