"""Templates: the Go-template subset, Jinja2 in a sandbox, clear errors with lines, masking."""

from __future__ import annotations

import pytest

from xcloudflow.gitops.preview import align_masked
from xcloudflow.gitops.render import MASK, RenderError, mask, render

SECRETS = {"database_password": "pw-123456", "user": "app"}


def r(source: str, secrets: dict[str, str] | None = SECRETS, **values: object) -> str:
    return render(source, secrets=secrets, secrets_label="secret 'db'", values=values)


def fails(source: str, secrets: dict[str, str] | None = SECRETS, **values: object) -> RenderError:
    with pytest.raises(RenderError) as info:
        r(source, secrets, **values)
    return info.value


def test_go_template_lookups_and_jinja() -> None:
    assert r('password = "{{ .Secrets.database_password }}"\n') == 'password = "pw-123456"\n'
    assert r("{{- .Values.pool.size -}}", pool={"size": 5}) == "5"
    assert r("{{ secrets.user }}/{{ values.n + 1 }}", n=1) == "app/2"
    assert r("{% for k in Secrets %}{{ k }};{% endfor %}") == "database_password;user;"
    assert r("{{ Secrets['user'] | upper }}") == "APP"


def test_masked_rendering_never_shows_a_secret() -> None:
    out = render(
        "p={{ .Secrets.database_password }} u={{ .Secrets.user | upper }}",
        secrets=SECRETS,
        secrets_label="s",
        values={},
        masked=True,
    )
    assert out == f"p={MASK} u={MASK.upper()}"
    assert "pw-123456" not in out


def test_errors_name_the_line_and_what_is_missing() -> None:
    err = fails("a\nb\n{{ .Secrets.nope }}\n")
    assert (err.line, err.message) == (3, "undefined: secret 'db' has no key 'nope'")
    err = fails("{{ .Secrets.x }}", secrets=None)
    assert "no key 'x'" in err.message
    err = fails("x\n{{ .Foo }}")
    assert err.line == 2 and "unsupported Go-template lookup .Foo" in err.message
    err = fails("x\n\n{% for %}")
    assert err.line == 3 and err.message.startswith("template syntax error")
    err = fails("{{ .Values.missing }}")
    assert "spec.values has no key 'missing'" in err.message
    err = fails("{{ 1 / 0 }}")
    assert "ZeroDivisionError" in err.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ Secrets.__class__ }}",
        "{{ Secrets._data }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ 'a' * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{% for i in range(10000000) %}{% endfor %}",
    ],
)
def test_the_sandbox_refuses_python_internals_and_exhaustion(source: str) -> None:
    err = fails(source)
    assert err.sandbox or "undefined" in err.message, err.message
    assert "pw-123456" not in err.message


def test_mask_and_align_hide_current_and_rotated_secret_values() -> None:
    assert mask("a=pw-123456 b=app", SECRETS.values()) == f"a={MASK} b={MASK}"
    old = 'host = "db"\npassword = "old-rotated-value"\nport = 1\n'
    new_masked = f'host = "db"\npassword = "{MASK}"\nport = 2\n'
    aligned = align_masked(old, new_masked)
    assert "old-rotated-value" not in aligned
    assert aligned == f'host = "db"\npassword = "{MASK}"\nport = 1\n'
