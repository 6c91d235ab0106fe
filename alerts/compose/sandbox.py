"""The hardened Jinja2 sandbox that alert templates and officer-edited text run in.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses private and internal attributes
and calls that mutate lists and dicts. Templates are also written by officers (custom text),
so this module closes what the stock sandbox leaves open:

- Reaching for internals (``__class__``, ``_TemplateReference__context``, ``|attr('__x')``,
  ``str.format`` tricks, ``%`` formatting) raises :class:`SandboxViolation` naming the template,
  at compile time when the name is written in the source, at render time otherwise.
- Work is metered per render: every loop iteration, call, attribute lookup and filter adds
  to a step budget checked against a step cap and a deadline on the CPU time of the render.
- Sizes are capped before the big value is built: string/list repetition and concatenation
  (``*``, ``+``, ``~``), ``join`` and ``replace``, values printed with ``{{ }}``, and every
  character written, including into the hidden buffers of macros, ``{% set %}`` blocks and
  ``{% filter %}`` blocks. Filters and globals are an allow-list: the ones that build output
  from a number (``center``, ``indent``, ``batch``, ``lipsum``, ``format``…) are absent,
  and ``range()`` stops at MAX_RANGE items.

``render_metered()`` is the one way to run a template here: it installs the budget and
turns every failure into an ``alerts.core.errors`` class.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateSyntaxError, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateNotFound, UndefinedError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import select_autoescape
from jinja2.visitor import NodeTransformer

from alerts.compose.limits import (
    FORMATTING,
    MAX_OUTPUT,
    MAX_POWER_BITS,
    MAX_PRODUCED,
    MAX_RANGE,
    MAX_SECONDS,
    MAX_STEPS,
    SAFE_FILTERS,
    SAFE_GLOBALS,
    SAFE_STR_METHODS,
)
from alerts.core.errors import AlertsError, SandboxViolation, TemplateError


@dataclass(slots=True)
class _Budget:
    name: str
    deadline: float
    steps: int = 0
    produced: int = 0


_BUDGET: ContextVar[_Budget | None] = ContextVar("alerts_render_budget", default=None)


def _template_name() -> str:
    budget = _BUDGET.get()
    return budget.name if budget else "<template>"


def _violation(what: str, template: str | None = None) -> SandboxViolation:
    name = template or _template_name()
    return SandboxViolation(f"template {name!r} {what}", details={"template": name})


def _refused(reason: str, template: str | None = None) -> SandboxViolation:
    return _violation(f"tried to reach something unsafe: {reason}", template)


def _unsafe(attribute: object, template: str | None = None, *, owner: object = None) -> SandboxViolation:
    of = f" of {type(owner).__name__!r} object" if owner is not None else ""
    return _refused(f"access to attribute {attribute!r}{of} is unsafe", template)


def _too_big() -> SandboxViolation:
    return _violation(f"built a value larger than {MAX_OUTPUT} characters")


def _tick(cost: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps += cost
    if budget.steps > MAX_STEPS:
        raise _violation(f"ran more than {MAX_STEPS} steps")
    if time.thread_time() > budget.deadline:
        raise _violation(f"used more than {MAX_SECONDS:g} seconds of CPU")


def _count_output(chars: int) -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.produced += chars
    if budget.produced > MAX_PRODUCED:
        raise _violation(f"wrote more than {MAX_PRODUCED} characters")


def approx_size(value: object, limit: int = MAX_OUTPUT) -> int:
    """Roughly how many characters ``str(value)`` takes; stops counting once past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 8
    return total


def _check_size(value: object) -> None:
    if isinstance(value, str | list | tuple | dict) and approx_size(value) > MAX_OUTPUT:
        raise _too_big()


def _cost(value: object) -> int:
    if isinstance(value, str):
        return 1 + len(value) // 256
    if isinstance(value, list | tuple | dict | set | range):
        return 1 + len(value)
    return 1


class _CountingBuffer(list[str]):
    """The list compiled templates write hidden output into (macros, set/filter blocks)."""

    def append(self, item: str) -> None:
        _count_output(len(item))
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        chunk = tuple(items)
        _count_output(sum(len(item) for item in chunk))
        super().extend(chunk)


def _checked_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


@pass_eval_context
def _checked_concat(eval_ctx: EvalContext, parts: list[Any]) -> str:
    if sum(approx_size(part) for part in parts) > MAX_OUTPUT:
        raise _too_big()
    return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


def _range(*args: int) -> range:
    """``range()`` for templates: at most MAX_RANGE items."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _violation(f"asked for a range of {len(numbers)} items (at most {MAX_RANGE})")
    return numbers


def _finalize(value: Any) -> Any:
    _check_size(value)
    return value


class _Hardener(NodeTransformer):
    """Refuses unsafe names written in the source and wires loops and ``~`` to the meters."""

    def __init__(self, environment: AlertSandbox, name: str) -> None:
        self.environment, self.name = environment, name

    def _meter(self, function: str, arg: nodes.Node) -> nodes.Call:
        call = nodes.Call(nodes.EnvironmentAttribute(function), [cast(nodes.Expr, arg)], [], None, None)
        return call.set_lineno(arg.lineno).set_environment(self.environment)  # type: ignore[return-value]

    # Children first, so a chain is reported at its first unsafe step, as it reads.
    def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        if node.attr.startswith("_"):
            raise _unsafe(node.attr, self.name)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        if isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
            raise _unsafe(node.arg.value, self.name)
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        for arg in node.args:
            if node.name == "attr" and isinstance(arg, nodes.Const) and str(arg.value).startswith("_"):
                raise _unsafe(arg.value, self.name)
        return self.generic_visit(node)

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        if isinstance(node.node, nodes.Getattr) and node.node.attr in FORMATTING:
            raise _refused(f"calling {node.node.attr}() is not allowed; join text with '~'", self.name)
        return self.generic_visit(node)

    def visit_Name(self, node: nodes.Name) -> nodes.Node:
        if node.name.startswith("__"):
            raise _refused(f"access to variable {node.name!r} is unsafe", self.name)
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            raise _violation("uses a recursive loop, which is not allowed", self.name)
        node = self.generic_visit(node)  # type: ignore[assignment]
        node.iter = self._meter("checked_iter", node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)  # type: ignore[assignment]
        parts = nodes.List(node.nodes)
        parts.set_lineno(node.lineno).set_environment(self.environment)
        return self._meter("checked_concat", parts)


class _HardenedCodeGenerator(CodeGenerator):
    environment: AlertSandbox

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        _Hardener(self.environment, self.name or "<string>").visit(node)
        super().visit_Template(node, frame)

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter: meter its input, refuse oversized input and output."""
    lead = 1 if hasattr(func, "jinja_pass_arg") else 0

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[lead] if len(args) > lead else None
        _tick(_cost(value))
        _check_size(value)
        result = func(*args, **kwargs)
        _check_size(result)
        return result

    return guarded


def _bounded_join(join: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(join)
    def bounded(eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        items = list(value)
        if sum(approx_size(item) for item in items) + len(str(d)) * len(items) > MAX_OUTPUT:
            raise _too_big()
        return join(eval_ctx, items, d, attribute)

    return bounded


def _bounded_replace(replace: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(replace)
    def bounded(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
        text = str(s)
        hits = len(text) + 1 if not old else text.count(str(old))
        if count is not None:
            hits = min(hits, max(int(count), 0))
        if len(text) + hits * len(str(new)) > MAX_OUTPUT:
            raise _too_big()
        return replace(eval_ctx, s, old, new, count)

    return bounded


class AlertSandbox(ImmutableSandboxedEnvironment):
    """Jinja2 environment for alert templates: immutable sandbox, strict undefined, metered."""

    code_generator_class = _HardenedCodeGenerator
    intercepted_binops = frozenset({"*", "+", "%", "**"})

    def __init__(self, loader: BaseLoader | None = None, *, html_strings: bool = False) -> None:
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            # html_strings: an environment for officer-edited HTML only, where everything escapes.
            autoescape=True
            if html_strings
            else select_autoescape(["html", "html.j2"], default_for_string=False),
            finalize=_finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
        self.filters = {name: _guard_filter(f) for name, f in self.filters.items() if name in SAFE_FILTERS}
        self.filters["join"] = _guard_filter(_bounded_join(self.filters["join"].__wrapped__))
        self.filters["replace"] = _guard_filter(_bounded_replace(self.filters["replace"].__wrapped__))
        self.globals = {name: value for name, value in self.globals.items() if name in SAFE_GLOBALS}
        self.globals["range"] = _range
        self.output_buffer = _CountingBuffer
        self.checked_iter = _checked_iter
        self.checked_concat = _checked_concat

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        """Register a filter of our own, metered like the built-in ones."""
        self.filters[name] = _guard_filter(func)

    def compile_string(self, source: str, name: str) -> Template:
        """Compile template source that is not a file (officer-edited text), under ``name``."""
        try:
            code = self.compile(source, name=name)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template {name!r}, line {exc.lineno}: {exc.message}") from exc
        return self.template_class.from_code(self, code, self.make_globals(None), None)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        if str(attribute).startswith("_") or (isinstance(obj, str) and attribute in FORMATTING):
            raise _unsafe(attribute, owner=obj)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        if isinstance(argument, str) and (
            argument.startswith("_") or (isinstance(obj, str) and argument in FORMATTING)
        ):
            raise _unsafe(argument, owner=obj)
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise _unsafe(attribute, owner=obj)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "%" and isinstance(left, str):
            raise _refused("string formatting with '%' is not allowed; join text with '~'")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(abs(left).bit_length(), 1) * right > MAX_POWER_BITS:  # an upper bound of its bits
                raise _violation(f"built a number larger than {MAX_POWER_BITS} bits")
            too_big = False
        elif operator == "*":
            sequence, times = (left, right) if isinstance(right, int) else (right, left)
            too_big = isinstance(times, int) and approx_size(sequence) * times > MAX_OUTPUT
        else:
            too_big = operator == "+" and approx_size(left) + approx_size(right) > MAX_OUTPUT
        if too_big:
            raise _too_big()
        return super().call_binop(context, operator, left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _tick(_cost(owner))
            if obj.__name__ not in SAFE_STR_METHODS:
                raise _refused(f"calling str.{obj.__name__}() is not allowed")
        else:
            _tick()
        result = super().call(context, obj, *args, **kwargs)
        _check_size(result)
        return result


def render_metered(template: Template, context: dict[str, Any], *, name: str | None = None) -> str:
    """Render ``template`` under the budget; every failure becomes an ``alerts.core.errors`` class."""
    name = name or template.name or "<string>"
    # the CPU time of the rendering thread (a render runs in one go, in one thread): a busy
    # machine slows a render down but does not make an ordinary template fail
    token = _BUDGET.set(_Budget(name=name, deadline=time.thread_time() + MAX_SECONDS))
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise _violation(f"output exceeds {MAX_OUTPUT} characters")
            chunks.append(chunk)
        return "".join(chunks)
    except AlertsError:
        raise
    except SecurityError as exc:
        raise _violation(f"tried to reach something unsafe: {exc}") from exc
    except OverflowError as exc:  # a float out of range, e.g. 10.0 ** 400
        raise _violation(f"built a value too large: {exc}") from exc
    except RecursionError as exc:
        raise _violation("recursed too deeply") from exc
    except TemplateNotFound as exc:
        raise TemplateError(
            f"template {name!r} uses template {exc.name!r}, which does not exist", details={"template": name}
        ) from exc
    except UndefinedError as exc:
        raise TemplateError(f"template {name!r}: {exc.message}", details={"template": name}) from exc
    except (JinjaTemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"template {name!r}: {exc}", details={"template": name}) from exc
    finally:
        _BUDGET.reset(token)
