"""The template sandbox: known SSTI payloads and output bombs are refused by name.

Each bomb is stopped by a budget (steps, range, output, produced characters, depth), which is
what bounds its time; no test here times it (a timing check failed under load: speed is measured
in bench/, and tests/security/test_templates_and_headers.py keeps a 5 s guard against a hang).
"""

from __future__ import annotations

import time

import pytest

from alerts.compose.limits import MAX_OUTPUT, MAX_POWER_BITS, MAX_PRODUCED, MAX_RANGE, MAX_STEPS
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
        ("{{ 2 ** 1000000 }}", f"built a number larger than {MAX_POWER_BITS} bits"),
        ("{% for i in range(10**9) %}x{% endfor %}", f"asked for a range of 1000000000 items (at most {MAX_RANGE})"),
        ("{{ range(10001)|length }}", f"asked for a range of 10001 items (at most {MAX_RANGE})"),
        ("{{ 9**(9**9) }}", f"built a number larger than {MAX_POWER_BITS} bits"),
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


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{% include "nope.j2" %}', "template 'note' uses template 'nope.j2', which does not exist"),
        ("{{ 1 // 0 }}", "template 'note': integer division or modulo by zero"),
        ("{{ 'a' + 1 }}", "template 'note': can only concatenate str (not \"int\") to str"),
        ("{{ case.nothing }}", "template 'note': 'dict object' has no attribute 'nothing'"),
    ],
    ids=["missing-include", "division-by-zero", "type-error", "undefined"],
)
def test_render_failures_name_the_template_in_message_and_details(source: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        RENDERER.render_string(source, {"case": {}}, name="note")
    assert info.value.message == message
    assert info.value.details == {"template": "note"}  # the API's error body points at it
    assert info.value.code == "template_error"


def test_the_step_budget_is_exact_and_a_short_string_filtered_costs_one_step() -> None:
    # 19 filters on a 10,000-item range cost 10,001 steps each (190,019); the two range()
    # calls and the loop's start one each: 190,022 before the loop. Each turn then costs two
    # steps, the turn and a filter on a one-letter string, so 4,989 turns end on MAX_STEPS.
    def source(turns: int) -> str:
        bulk = "{{ r|length }}" * 19
        return f"{{% set r = range(10000) %}}{bulk}{{% for j in range({turns}) %}}{{{{ x|upper }}}}{{% endfor %}}"

    assert RENDERER.render_string(source(4989), {"x": "a"}) == "10000" * 19 + "A" * 4989
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(source(4990), {"x": "a"})
    assert info.value.message == f"template '<string>' ran more than {MAX_STEPS} steps"


def test_string_methods_on_long_text_are_metered_by_its_length() -> None:
    # each count() reads 200,000 characters: it costs ~780 steps, so 300 of them run out
    source = "{% for i in range(300) %}{% if s.count('b') %}b{% endif %}{% endfor %}done"
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(source, {"s": "a" * 200_000})
    assert info.value.message == f"template '<string>' ran more than {MAX_STEPS} steps"
    assert RENDERER.render_string(source, {"s": "a" * 200}) == "done"  # short text: cheap


def test_a_long_list_of_numbers_under_the_size_cap_is_not_refused() -> None:
    numbers = list(range(25_000))
    assert len(str(numbers)) < MAX_OUTPUT
    assert RENDERER.render_string("{{ numbers|sum }}", {"numbers": numbers}) == str(sum(numbers))


def test_a_table_whose_text_passes_the_size_cap_is_refused_before_a_filter_runs() -> None:
    table = {f"k{i:05}": f"v{i:05}" for i in range(20_000)}  # "'k00000': 'v00000', " each
    assert len(str(table)) > MAX_OUTPUT
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string("{{ table|length }}", {"table": table})
    assert info.value.message == f"template '<string>' built a value larger than {MAX_OUTPUT} characters"
    small = dict(list(table.items())[:1000])
    assert RENDERER.render_string("{{ table|length }}", {"table": small}) == "1000"


def test_powers_are_capped_by_the_bits_they_would_take_and_small_arithmetic_works() -> None:
    # bit_length(2) × 2048 is MAX_POWER_BITS: the largest power of two allowed
    assert MAX_POWER_BITS == 2 * 2048
    assert RENDERER.render_string("{{ 2 ** 2048 }}", {}) == str(2**2048)
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string("{{ 2 ** 2049 }}", {}, name="note")
    assert info.value.message == f"template 'note' built a number larger than {MAX_POWER_BITS} bits"
    assert info.value.details == {"template": "note"}
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string("{{ 10.0 ** 400 }}", {}, name="note")
    assert info.value.message.startswith("template 'note' built a value too large: ")
    assert (
        RENDERER.render_string("{{ 2 ** -1 }} {{ (-3) ** 3 }} {{ n % 3 }} {{ 7 * 6 }}", {"n": 7})
        == "0.5 -27 1 42"
    )


def test_a_refusal_found_while_compiling_names_the_template_it_was_given() -> None:
    """Names written in the source are refused while compiling, before anything runs: the
    message names the template as the caller called it (an officer's note), and a template
    compiled with no name at all (jinja's own ``from_string``) as ``<string>``."""
    from alerts.compose.sandbox import AlertSandbox

    for source, reason in (
        ("{{ ''.__class__ }}", "access to attribute '__class__' is unsafe"),
        ("{{ ''.format('x') }}", "calling format() is not allowed; join text with '~'"),
    ):
        with pytest.raises(SandboxViolation) as info:
            RENDERER.render_string(source, {}, name="officer note")
        assert info.value.message == f"template 'officer note' tried to reach something unsafe: {reason}"
        assert info.value.details == {"template": "officer note"}
        with pytest.raises(SandboxViolation) as info:
            AlertSandbox().from_string(source)
        assert info.value.message == UNSAFE.format(reason)


def test_subscripting_refuses_private_keys_and_formatting_only_on_text() -> None:
    """``x['_k']`` is refused like ``x._k`` whatever ``x`` is (also a plain dict); ``'format'``
    is refused only as a method of a string: a case's own key of that name reads normally."""
    case = {"_secret": "no", "format": "PDF", "links": {"format": "HTML"}}
    for source in ("{{ case['_secret'] }}", "{% set k = '_' ~ 'secret' %}{{ case[k] }}"):
        with pytest.raises(SandboxViolation) as info:
            RENDERER.render_string(source, {"case": case})
        assert "access to attribute '_secret'" in info.value.message
    assert RENDERER.render_string("{{ case['format'] }} {{ case.links['format'] }}", {"case": case}) == (
        "PDF HTML"
    )
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string("{% set k = 'for' ~ 'mat' %}{{ ('{0}'[k])('x') }}", {})
    assert info.value.message == UNSAFE.format("access to attribute 'format' of 'str' object is unsafe")


@pytest.mark.parametrize(
    "source",
    [
        "{% if 1000000 * 'x' %}built{% endif %}",
        "{{ 1000000 * 'x' == '' }}",
        "{% if 1000000 * ['x'] %}built{% endif %}",
    ],
)
def test_a_number_times_text_is_refused_before_it_is_built_even_if_never_written(source: str) -> None:
    """``n * 'x'`` is ``'x' * n``: refused by its size before Python builds it, also when the
    template only tests it and writes nothing (no output or filter check would see it)."""
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(source, {})
    assert info.value.message == f"template '<string>' built a value larger than {MAX_OUTPUT} characters"
    assert RENDERER.render_string("{% if 3 * 'x' %}{{ 3 * 'ab' }}{% endif %}", {}) == "ababab"


class _SlowToWrite:
    """A value that takes wall-clock time, not CPU, to write (as a busy machine makes any)."""

    def __str__(self) -> str:
        time.sleep(0.3)
        return "slow"


def test_the_time_limit_counts_the_renders_cpu_not_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loaded machine an ordinary render could take seconds of wall-clock time and was
    refused (a public alert page answered 422 during a busy CI run): the limit is on the CPU
    time the render itself uses."""
    from alerts.compose import sandbox

    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.2)
    source = "{{ slow }}{% for i in range(3) %}{{ i + 1 }}{% endfor %}"
    assert RENDERER.render_string(source, {"slow": _SlowToWrite()}) == "slow123"

    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.001)
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string("{% for i in range(10000) %}{{ (i * 7) % 3 }}{% endfor %}" * 10, {})
    assert info.value.message == "template '<string>' used more than 0.001 seconds of CPU"


def test_a_number_filtered_costs_one_step_like_a_short_string() -> None:
    # as in the exact-budget test above: 190,022 steps before the loop, then two a turn (the
    # turn and a filter on a number), so 4,989 turns end on MAX_STEPS and one more is refused
    def source(turns: int) -> str:
        bulk = "{{ r|length }}" * 19
        return (
            f"{{% set r = range(10000) %}}{bulk}{{% for j in range({turns}) %}}{{{{ n|abs }}}}{{% endfor %}}"
        )

    assert RENDERER.render_string(source(4989), {"n": -7}) == "10000" * 19 + "7" * 4989
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(source(4990), {"n": -7})
    assert info.value.message == f"template '<string>' ran more than {MAX_STEPS} steps"


@pytest.mark.parametrize(("flt", "small_result"), [("max", "k2"), ("first", "k1"), ("sort|length", "2")])
def test_a_table_past_the_size_cap_is_refused_before_a_filter_given_the_environment_runs(
    flt: str, small_result: str
) -> None:
    """Filters jinja hands its environment first (max, first, sort) meter the value
    filtered, not the environment: an oversized table is refused, a small one is not."""
    table = {f"k{i:05}": f"v{i:05}" for i in range(20_000)}
    assert len(str(table)) > MAX_OUTPUT
    with pytest.raises(SandboxViolation) as info:
        RENDERER.render_string(f"{{{{ table|{flt} }}}}", {"table": table})
    assert info.value.message == f"template '<string>' built a value larger than {MAX_OUTPUT} characters"
    small = {"k1": "v1", "k2": "v2"}
    assert RENDERER.render_string(f"{{{{ table|{flt} }}}}", {"table": small}) == small_result
