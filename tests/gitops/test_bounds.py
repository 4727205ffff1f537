"""GitOps templates and values are bounded while they render and load (issue 11): every known way to
make a huge string or run for long is refused with a clear error, in bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gitops.conftest import SEED_CONFIG, Write, add_source, git_commit, set_secret, sync, versions
from tests.rss import peak_rss_growth
from xcloudflow.bounded import ContentLimits
from xcloudflow.gitops.documents import DocumentProblem, parse_file
from xcloudflow.gitops.render import RenderError, render

BIG = "{% set big = 'a' * 1000000 %}"


def fails(source: str, bounds: ContentLimits | None = None, **values: object) -> RenderError:
    with peak_rss_growth() as growth, pytest.raises(RenderError) as info:
        render(source, secrets=None, secrets_label="Secrets", values=values, bounds=bounds)
    assert growth.mib < 100, f"{source}: +{growth.mib:.0f} MiB"
    return info.value


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a'.ljust(1500000000) }}",
        "{{ 'a'.rjust(1500000000) }}",
        "{{ 'a'.zfill(1500000000) }}",
        "{{ 'a'|center(1500000000) }}",
        "{{ ('a\t' * 1000).expandtabs(1000000000) }}",
        "{{ '{:>1500000000}'.format('a') }}",
        "{{ '{:>{w}}'.format('a', w=1500000000) }}",
        "{{ '{:.1500000000f}'.format(1.0) }}",
        "{{ '%1500000000s' % 'a' }}",
        "{{ '%*s' % (1500000000, 'a') }}",
        "{{ '%1500000000s'|format('a') }}",
        BIG + "{{ big|replace('a', 'aaaa') }}",
        BIG + "{{ big.replace('a', 'aaaa') }}",
        "{{ ('a\n' * 400000)|indent(10) }}",
        BIG + "{{ (big ~ '\n')|indent(1000000) }}",
        BIG + "{{ big|wordwrap(1, wrapstring='x' * 1000) }}",
        BIG + "{{ ([big] * 1000)|join }}",
        BIG + "{{ ([big] * 1000)|map('string')|join }}",
        BIG + "{{ ''.join([big] * 1000) }}",
        BIG + "{{ [big] * 1000 }}",
        BIG + "{{ ([big] * 1000)|string }}",
        BIG + "{{ ([big] * 1000)|tojson }}",
        BIG + "{{ big ~ big }}",
        BIG + "{{ big + big }}",
        BIG + "{{ '%s%s' % (big, big) }}",
        "{{ ('&' * 500000)|forceescape|forceescape }}",
        BIG + "{% macro m() %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endmacro %}{{ m() }}",
        BIG + "{% set captured %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endset %}{{ captured }}",
        BIG + "{% filter upper %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endfilter %}",
        "{{ 'a' * 100000000 }}",
        "{{ [0] * 100000000 }}",
        "{{ range(10 ** 12)|list }}",
        "{{ [1]|batch(1000000000, 'x')|list }}",
        "{% set x = 10 ** 1000 %}{{ x ** 1000 }}",
        "{% set ns = namespace(x=2 ** 60000) %}{% for i in range(10) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "{{ [[1] * 1000] * 1000|sum(start=[]) }}",
    ],
)
def test_size_bypasses_are_refused(source: str) -> None:
    err = fails(source)
    assert err.sandbox, err.message
    assert "refused" in err.message or "longer than" in err.message or "only" in err.message, err.message


def test_the_output_is_counted_while_it_renders() -> None:
    # 100,000 x 1 MB would be built whole before a size check after rendering.
    err = fails(BIG + "{% for i in range(100000) %}{{ big }}{% endfor %}")
    assert "rendered content is longer than 1048576 characters" in err.message


def test_loop_iterations_are_counted_even_over_long_strings() -> None:
    # 10^12 iterations were allowed: only range() had a budget.
    err = fails(BIG + "{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}")
    assert "loop iterations" in err.message and "XCF_TEMPLATE_MAX_ITERATIONS" in err.message


def test_recursive_loops_and_macros_are_bounded() -> None:
    err = fails("{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}")
    assert err.sandbox or "recursion" in err.message, err.message
    err = fails("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
    assert "recursion" in err.message or err.sandbox, err.message
    err = fails("{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}")
    assert "recursion" in err.message or err.sandbox, err.message


def test_a_wall_clock_deadline_is_checked_while_rendering() -> None:
    bounds = ContentLimits(template_max_iterations=10**12, template_timeout_seconds=0.2)
    err = fails(BIG + "{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}", bounds)
    assert "rendering took longer than 0.2 s" in err.message and "XCF_TEMPLATE_TIMEOUT_SECONDS" in err.message


def test_lists_cannot_grow_in_place() -> None:
    err = fails("{% set l = [1] %}{% for i in range(40) %}{{ l.extend(l) }}{% endfor %}")
    assert err.sandbox


def test_lipsum_is_gone_and_ordinary_templates_still_render() -> None:
    assert "undefined" in fails("{{ lipsum(n=1000000000) }}").message
    out = render(
        "{% for s in Values.servers %}{{ s.name|upper }}:{{ '%-6s'|format(s.port) }}|{{ '{:>4}'.format(loop.index) }}\n"
        "{% endfor %}{{ Values.servers|map(attribute='name')|join(',') }} {{ 'x'.ljust(3) }}.",
        secrets=None,
        secrets_label="Secrets",
        values={"servers": [{"name": "a", "port": 1}, {"name": "b", "port": 22}]},
    )
    assert out == "A:1     |   1\nB:22    |   2\na,b x  ."


# ---------------------------------------------------------------------------------------- values


def _document(values: str) -> str:
    return SEED_CONFIG.replace("  secretsRef:", values + "  secretsRef:")


def test_an_alias_bomb_in_values_is_a_problem_at_its_line() -> None:
    bomb = "  values:\n    a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"    {level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    with peak_rss_growth() as growth:
        [problem] = parse_file(_document(bomb), file="prod/db.yaml")
    assert isinstance(problem, DocumentProblem)
    assert "aliases expand to more than 10000 values" in problem.message
    assert problem.line == 21  # the `d:` line: 110 + 1,110 + 11,110 values from aliases passes 10,000
    assert growth.mib < 100


def test_deep_values_are_a_problem() -> None:
    deep = "  values:\n    v: " + "[" * 150 + "]" * 150 + "\n"
    [problem] = parse_file(_document(deep), file="prod/db.yaml")
    assert isinstance(problem, DocumentProblem)
    assert "nested more than 100 levels" in problem.message


def test_anchors_on_scalars_and_small_merges_still_work() -> None:
    values = "  values:\n    base: &base {size: 1}\n    pool:\n      <<: *base\n      name: &n main\n    again: *n\n"
    [doc] = parse_file(_document(values), file="prod/db.yaml")
    assert not isinstance(doc, DocumentProblem)
    assert doc.values == {"base": {"size": 1}, "pool": {"size": 1, "name": "main"}, "again": "main"}


def test_a_sync_with_a_bomb_publishes_nothing(admin: TestClient, repo: Path, write: Write) -> None:
    set_secret(admin)
    add_source(admin, repo)
    bomb = "  values:\n    a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        bomb += f"    {level}: &{level} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    write("production/database.yaml", _document(bomb))
    git_commit(repo, "bomb")
    with peak_rss_growth() as growth:
        source = sync(admin)
    [result] = source["status"]["documents"]  # type: ignore[index]
    assert result["result"] == "failed" and "aliases expand" in result["message"]
    assert versions(admin) == []
    assert growth.mib < 100
