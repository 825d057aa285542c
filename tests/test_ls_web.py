"""Label Studio's web forms (connectors/ls_web.py): a server that is down says so; logging in,
signing up and reading tokens against a real server are in test_annotation.py."""

import pytest

from connectors.labelstudio_server import free_port
from connectors.ls_web import account_token, sign_up, web_login
from loop.errors import ToolUnreachable


def test_the_forms_say_when_the_server_is_down():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ToolUnreachable, match="does not answer .*; is it running"):
        web_login(url, "a@loop.local", "pw")
    with pytest.raises(ToolUnreachable, match="does not answer"):
        sign_up(url, "invite", "a@loop.local", "pw")
    with pytest.raises(ToolUnreachable, match="does not answer"):
        account_token(url, "a@loop.local", "pw")
