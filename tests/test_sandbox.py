"""The template sandbox: known SSTI payloads and output bombs are refused, quickly, by name."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from alerts.errors import SandboxViolation, TemplateError
from alerts.render import Renderer
from alerts.sandbox import MAX_OUTPUT, MAX_PRODUCED, MAX_STEPS

RENDERER = Renderer()
UNSAFE = "template 'custom text' tried to reach {!r}, which is unsafe"


@pytest.fixture(autouse=True)
def quick() -> Iterator[None]:
    """Every refusal here must come well under a second."""
    started = time.perf_counter()
    yield
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("payload", "reached"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ ''|attr('__class__') }}", "__class__"),
        ("{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "__class__"),
        ("{{ ()|attr(['_', '_class_', '_']|join) }}", "__class__"),  # name built at run time
        ("{% set n = '_' ~ '_class__' %}{{ ''[n] }}", "__class__"),
        ("{{ ''['__class__'] }}", "__class__"),
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "__init__"),
        ("{{ joiner.__init__.__globals__ }}", "__init__"),
        ("{{ self._TemplateReference__context.cycler }}", "_TemplateReference__context"),
        ("{{ self.__dict__ }}", "__dict__"),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", "__globals__"),
        ("{{ request.application.__globals__.__builtins__.__import__('os') }}", "__globals__"),
        ("{{ config.__class__.__init__.__globals__['os'] }}", "__class__"),
        ("{{ namespace.__init__.__globals__ }}", "__init__"),
        ("{{ '{0.__class__.__mro__}'.format(1) }}", "format"),
        ("{{ '{x}'.format_map({}) }}", "format_map"),
        ("{{ (''|attr('format'))('{0.__class__}', 1) }}", "format"),
        ("{{ '%s and %s' % ('a', 'b') }}", "%"),
        ("{{ [].append(1) }}", "append"),
        ("{{ {}.update(a=1) }}", "update"),
        ("{{ ''.join(['a']) }}", "str.join"),
        ("{{ ''.center(10) }}", "str.center"),
        ("{{ __builtins__ }}", "__builtins__"),
        ("{{ range.__self__ }}", "__self__"),
    ],
)
def test_ssti_payloads_are_refused(payload: str, reached: str) -> None:
    for html in (False, True):
        with pytest.raises(SandboxViolation) as info:
            RENDERER.render_string(payload, {"case": {"defender": "x"}}, html=html)
        assert info.value.message == UNSAFE.format(reached)
        assert info.value.details == {"template": "custom text"}
        assert info.value.code == "template_unsafe"


def test_violation_names_the_template() -> None:
    with pytest.raises(
        SandboxViolation, match=r"^template 'officer note' tried to reach '__class__', which is unsafe$"
    ):
        RENDERER.render_string("{{ x.__class__ }}", {"x": 1}, name="officer note")


@pytest.mark.parametrize(
    ("bomb", "message"),
    [
        ("{{ 'a' * 100000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ ['a'] * 100000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ 100000000 * 'ab' }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s + s }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s ~ s }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ [s, s] }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200 %}{{ range(100000)|join(s) }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s|replace('a', s) }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ 2 ** 1000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% for i in range(10**9) %}x{% endfor %}",
         "built a value too large: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000)."),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         f"ran more than {MAX_STEPS} steps"),
        ("{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
         f"ran more than {MAX_STEPS} steps"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{{ 'abcdefgh' }}{% endfor %}{% endfor %}",
         f"produced more than {MAX_OUTPUT} characters"),
        ("{% macro m() %}{% for i in range(100) %}{{ 'a' * 200000 }}{% endfor %}{% endmacro %}{{ m()|length }}",
         f"wrote more than {MAX_PRODUCED} characters"),
        ("{% set x %}{% for i in range(100) %}{{ 'a' * 200000 }}{% endfor %}{% endset %}{{ x|length }}",
         f"wrote more than {MAX_PRODUCED} characters"),
        ("{% macro f(n) %}{% if n %}{% set s = f(n - 1) %}{{ s }}{{ s }}{% endif %}x{% endmacro %}{{ f(60) }}",
         f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursed too deeply"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "uses a recursive loop, which is not allowed"),
    ],
)  # fmt: skip
def test_output_bombs_are_refused_quickly(bomb: str, message: str) -> None:
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(bomb, {})
    assert info.value.message == f"template 'custom text' {message}"


@pytest.mark.parametrize("source", ["{{ 'a'|center(10**9) }}", "{{ lipsum(10**6) }}", "{{ x|safe }}"])
def test_filters_and_globals_that_build_from_numbers_are_absent(source: str) -> None:
    with pytest.raises(TemplateError):
        RENDERER.render_string(source, {"x": "<b>"})


def test_ordinary_template_code_still_works() -> None:
    source = (
        "{% set items = ['b', 'a'] %}{{ items|sort|join(', ')|upper }}; {{ 'x' * 3 }}; {{ 2 ** 10 }}; "
        "{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}; {{ ' Hi '.strip() }}; {{ 7 * 7 }}; "
        "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(1) }}; {{ [1, 2] + [3] }}; {{ 'a' ~ 'b' }}"
    )
    assert (
        RENDERER.render_string(source, {"d": {"k": "v"}})
        == "A, B; xxx; 1024; k=v; Hi; 49; <1>; [1, 2, 3]; ab"
    )
