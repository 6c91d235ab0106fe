"""The template sandbox: known SSTI payloads and output bombs are refused by name.

Each bomb is stopped by a budget (steps, range, output, produced characters, depth), which is
what bounds its time; no test here times it (a timing check failed under load: speed is measured
in bench/, and tests/security/test_templates_and_headers.py keeps a 5 s guard against a hang).
"""

from __future__ import annotations

import pytest

from alerts.compose.limits import MAX_OUTPUT, MAX_PRODUCED, MAX_RANGE, MAX_STEPS
from alerts.compose.render import Renderer
from alerts.core.errors import SandboxViolation, TemplateError

RENDERER = Renderer()
UNSAFE = "template '<string>' tried to reach something unsafe: {}"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "access to attribute '__class__' is unsafe"),
        ("{{ ''.__class__ }}", "access to attribute '__class__' is unsafe"),
        ("{{ ''|attr('__class__') }}", "access to attribute '__class__' is unsafe"),
        ("{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "access to attribute '__class__' is unsafe"),
        (
            "{{ ()|attr(['_', '_class_', '_']|join) }}",
            "access to attribute '__class__' of 'tuple' object is unsafe",
        ),  # name built at run time
        (
            "{% set n = '_' ~ '_class__' %}{{ ''[n] }}",
            "access to attribute '__class__' of 'str' object is unsafe",
        ),
        ("{{ ''['__class__'] }}", "access to attribute '__class__' is unsafe"),
        (
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "access to attribute '__init__' is unsafe",
        ),
        ("{{ joiner.__init__.__globals__ }}", "access to attribute '__init__' is unsafe"),
        (
            "{{ self._TemplateReference__context.cycler }}",
            "access to attribute '_TemplateReference__context' is unsafe",
        ),
        ("{{ self.__dict__ }}", "access to attribute '__dict__' is unsafe"),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", "access to attribute '__globals__' is unsafe"),
        (
            "{{ request.application.__globals__.__builtins__.__import__('os') }}",
            "access to attribute '__globals__' is unsafe",
        ),
        ("{{ config.__class__.__init__.__globals__['os'] }}", "access to attribute '__class__' is unsafe"),
        ("{{ namespace.__init__.__globals__ }}", "access to attribute '__init__' is unsafe"),
        ("{{ '{0.__class__.__mro__}'.format(1) }}", "calling format() is not allowed; join text with '~'"),
        ("{{ '{x}'.format_map({}) }}", "calling format_map() is not allowed; join text with '~'"),
        (
            "{{ (''|attr('format'))('{0.__class__}', 1) }}",
            "access to attribute 'format' of 'str' object is unsafe",
        ),
        ("{{ '%s and %s' % ('a', 'b') }}", "string formatting with '%' is not allowed; join text with '~'"),
        ("{{ [].append(1) }}", "access to attribute 'append' of 'list' object is unsafe"),
        ("{{ {}.update(a=1) }}", "access to attribute 'update' of 'dict' object is unsafe"),
        ("{{ ''.join(['a']) }}", "calling str.join() is not allowed"),
        ("{{ ''.center(10) }}", "calling str.center() is not allowed"),
        ("{{ __builtins__ }}", "access to variable '__builtins__' is unsafe"),
        ("{{ range.__self__ }}", "access to attribute '__self__' is unsafe"),
    ],
)
def test_ssti_payloads_are_refused(payload: str, reason: str) -> None:
    for html in (False, True):
        with pytest.raises(SandboxViolation) as info:
            RENDERER.render_string(payload, {"case": {"defender": "x"}}, autoescape=html)
        assert info.value.message == UNSAFE.format(reason)
        assert info.value.details == {"template": "<string>"}
        assert info.value.code == "template_unsafe"


def test_violation_names_the_template() -> None:
    with pytest.raises(
        SandboxViolation,
        match=r"^template 'officer note' tried to reach something unsafe: "
        r"access to attribute '__class__' of 'int' object is unsafe$",
    ):
        RENDERER.render_string("{{ x|attr(y) }}", {"x": 1, "y": "__class__"}, name="officer note")


@pytest.mark.parametrize(
    ("bomb", "message"),
    [
        ("{{ 'a' * 100000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ ['a'] * 100000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ 100000000 * 'ab' }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s + s }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s ~ s }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ [s, s] }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200 %}{{ range(10000)|join(s) }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% set s = 'a' * 200000 %}{{ s|replace('a', s) }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{{ 2 ** 1000000 }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% for i in range(10**9) %}x{% endfor %}", f"asked for a range of 1000000000 items (at most {MAX_RANGE})"),
        ("{{ range(10001)|length }}", f"asked for a range of 10001 items (at most {MAX_RANGE})"),
        ("{{ 9**(9**9) }}", f"built a value larger than {MAX_OUTPUT} characters"),
        ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
         f"ran more than {MAX_STEPS} steps"),
        ("{% set r = range(10000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
         f"ran more than {MAX_STEPS} steps"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{{ 'abcdefgh' }}{% endfor %}{% endfor %}",
         f"output exceeds {MAX_OUTPUT} characters"),
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
    assert info.value.message == f"template '<string>' {message}"


@pytest.mark.parametrize("source", ["{{ 'a'|center(10**9) }}", "{{ lipsum(10**6) }}", "{{ x|safe }}"])
def test_filters_and_globals_that_build_from_numbers_are_absent(source: str) -> None:
    with pytest.raises(TemplateError):
        RENDERER.render_string(source, {"x": "<b>"})


def test_power_is_left_associative_and_small_results_are_allowed() -> None:
    # jinja reads 9**9**9 as (9**9)**9: a 78-digit number, not the 370-million-digit bomb
    assert RENDERER.render_string("{{ 9**9**9 }}", {}) == str((9**9) ** 9)
    assert RENDERER.render_string("{{ range(10000)|length }}", {}) == "10000"


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
