"""Chapter parameters: one schema per chapter, three modes, every value checked before any work.

``fast`` — CI sizes, each chapter well under a minute; ``book`` — what the rendered book shows (the
whole book in about 20 minutes on two CPU cores); ``paper`` — the specification's grids and sizes, for
a GPU or a long CPU run. A parameter the reader set explicitly (not None) always wins.

A chapter's schema is declared once, in its first two code cells: the parameters cell names every
parameter and gives its meaning as the comment on its line (what ``papermill --help-notebook`` shows
too), ``n_features = None  # n of the model``; the next cell gives each one's type, allowed range and
defaults, and does nothing else::

    sizes = chapter.resolve(globals(), "01_toy_model",
                            n_features=chapter.count((128, 512, 1024), low=2),   # (fast, book, paper)
                            sweep_probs=chapter.fractions([0.02, 0.1]))          # the same in every mode
    sizes

``resolve`` checks ``fast``, ``scale``, ``seed``, ``device`` (``COMMON``) and every declared value,
fills in the mode's defaults, writes the checked values back into the notebook's namespace and returns
the table the scorecard records; displayed, that table is the chapter's parameter table. Values from
papermill (``-p fast false`` is the string "false") or YAML ("2e6") arrive as strings: a string that
spells a value of the right type is read as it ("false", "true", "2e6" for an integer, "0.1" for a
number), any other is refused with a ValueError naming the parameter, the value and the allowed range.
``toysup.book.reproduce`` runs the same two cells on a parameter file's values before any chapter runs.
"""
import ast
import dataclasses
import html
import io
import json
import tokenize
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from toysup import checks, paths

SCALES = ("book", "paper")
MODES = ("fast", "book", "paper")
DEFAULTS = "default (fast / book / paper)"   # the column of a parameter table
NOTEBOOKS = paths.REPO_ROOT / "notebooks"
_KINDS = {"bool": ("True or False (or 'true'/'false')", "booleans"), "int": ("integer", "integers"),
          "float": ("number", "numbers"), "str": ("", ""), "device": ("'cpu' or 'cuda[:N]'", "")}


@dataclass(frozen=True)
class Param:
    """One parameter: kind ("bool", "int", "float", "str", "device"), ``many`` (a non-empty list of
    such values), the allowed range (``low``/``high``, closed unless ``open_low``; ``choices``;
    ``power_of_two``), ``optional`` (None allowed and kept), and the default: one value for every
    mode, or a tuple (fast, book, paper)."""

    kind: str
    default: Any = None
    many: bool = False
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    power_of_two: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    meaning: str = ""

    def defaults(self) -> tuple[Any, Any, Any]:
        """The default in each of MODES."""
        if isinstance(self.default, tuple):
            if len(self.default) != len(MODES):
                raise ValueError(f"a tuple of defaults must be (fast, book, paper), got {len(self.default)} values")
            return self.default
        return (self.default,) * len(MODES)

    def allowed(self) -> str:
        """The allowed values in words, e.g. "list of numbers in (0, 1]"."""
        one, several = _KINDS[self.kind]
        if self.choices:
            one = " or ".join(repr(c) for c in self.choices)
        if self.power_of_two:
            one, several = "power of two", "powers of two"
        if self.kind in ("int", "float") and (self.low is not None or self.high is not None):
            low = "-inf" if self.low is None else _bound(self.low)
            high = "inf" if self.high is None else _bound(self.high)
            left = "(" if self.open_low or self.low is None else "["
            interval = f" in {left}{low}, {high}{')' if self.high is None else ']'}"
            one, several = one + interval, several + interval
        text = f"non-empty list of {several}" if self.many else one
        return text + (", or None" if self.optional else "")

    def check(self, name: str, value: Any) -> Any:
        """``value`` read as this parameter's type (see the module docstring) and checked against its
        range; else ValueError naming ``name``, the value and the allowed values."""
        if value is None and self.optional:
            return None
        if self.kind == "device":             # "cpu" or "cuda[:N]", CUDA only if this machine has it
            if not isinstance(value, str):
                raise ValueError(f"{name} must be 'cpu' or 'cuda[:N]', got {value!r}")
            checks.device(value)
            return value
        try:
            if not self.many:
                return self._one(value)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not len(value):
                raise ValueError
            return [self._one(v) for v in value]
        except (ValueError, TypeError, OverflowError):
            allowed = self.allowed()
            article = "" if allowed[0] in "T'" else "an " if allowed[0] in "aeiou" else "a "
            raise ValueError(f"{name} must be {article}{allowed}, got {value!r}") from None

    def _one(self, value: Any) -> Any:
        """One value, coerced and checked; ValueError (no message: ``check`` writes it) if it fails."""
        if self.kind == "bool":
            return _boolean(value)
        if self.kind == "str":
            if value not in self.choices:
                raise ValueError
            return value
        number = _number(value, integer=self.kind == "int")
        low_ok = self.low is None or (number > self.low if self.open_low else number >= self.low)
        if not (low_ok and (self.high is None or number <= self.high)):
            raise ValueError
        if self.power_of_two and (number < 1 or number & (number - 1)):
            raise ValueError
        return number


def _boolean(value: Any) -> bool:
    """True/False (numpy's too) or the strings "true"/"false" in any case; nothing else."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError


def _number(value: Any, *, integer: bool) -> int | float:
    """An int (integer=True: an integral value, e.g. 2e6 or "2e6") or a finite float, from a number
    or a string spelling one; never from a bool."""
    if isinstance(value, str):
        try:
            spelled = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError from None
        if not spelled.is_finite():
            raise ValueError
        value = int(spelled) if spelled == spelled.to_integral_value() else float(spelled)
    elif isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError
    if integer:
        if isinstance(value, Integral):
            return int(value)
        if value != int(value):      # raises for inf and nan, both refused
            raise ValueError
        return int(value)
    return checks.finite_float("value", value)


def count(default: Any, *, low: int = 1, high: int | None = None, power_of_two: bool = False) -> Param:
    """An integer parameter (a size or a count), at least ``low`` (default 1)."""
    return Param("int", default, low=low, high=high, power_of_two=power_of_two)


def counts(default: Any, *, low: int = 1, high: int | None = None, power_of_two: bool = False) -> Param:
    """A non-empty list of integers, each at least ``low`` (default 1): e.g. the values of n."""
    return Param("int", default, many=True, low=low, high=high, power_of_two=power_of_two)


def fractions(default: Any, *, high: float = 1.0) -> Param:
    """A non-empty list of numbers in (0, high]: probabilities p, ratios r."""
    return Param("float", default, many=True, low=0, high=high, open_low=True)


def flag(default: Any) -> Param:
    """A boolean parameter."""
    return Param("bool", default)


def seeds(default: Any) -> Param:
    """A non-empty list of seeds."""
    return Param("int", default, many=True, low=0, high=checks.SEED_MAX)


def optional_seed() -> Param:
    """A seed that defaults to None (the notebook then derives it from ``seed``)."""
    return Param("int", None, low=0, high=checks.SEED_MAX, optional=True)


def cpu_device() -> Param:
    """``device`` of a chapter with nothing to put on a GPU (numpy throughout): "cpu" only."""
    return Param("str", "cpu", choices=("cpu",), meaning="'cpu' only: this chapter computes with numpy")


COMMON = {
    "fast": Param("bool", False, meaning="CI sizes; every check still runs"),
    "scale": Param("str", "book", choices=SCALES, meaning="the sizes when not fast: these pages' (book) or "
                   "the paper's (a GPU or a long CPU run)"),
    "seed": Param("int", 0, low=0, high=checks.SEED_MAX, meaning="the seed all randomness flows from"),
    "device": Param("device", "cpu", meaning="where the chapter's tensors live and train"),
}


def parameters_cell(notebook: Path) -> dict[str, tuple[Any, str]]:
    """{name: (literal value, comment on its line)} of the notebook's cell tagged ``parameters``."""
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            comments = {tok.start[0]: tok.string.lstrip("#").strip() for tok in
                        tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
            return {target.id: (ast.literal_eval(node.value), comments.get(node.lineno, ""))
                    for node in ast.parse(source).body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)}
    raise ValueError(f"{notebook.name} has no cell tagged 'parameters'")


def notebook_of(name: str) -> Path:
    """The chapter's notebook: ``<name>.ipynb`` in the working directory (where papermill, Jupyter,
    jupyter-book and nbval start kernels) if there, else in the repository's notebooks/ folder."""
    here = Path(f"{name}.ipynb")
    found = next((p for p in (here, NOTEBOOKS / here) if p.is_file()), None)
    if found is None:
        raise ValueError(f"chapter {name!r}: no {here} in the working directory or in notebooks/")
    return found


class Sizes(dict):
    """{name: value} of a chapter's declared sizes plus "mode" (what the scorecard records); displayed
    in a notebook, the chapter's parameter table: every parameter with its allowed values, its value
    in this run, its defaults in each mode and its meaning."""

    def __init__(self, values: Mapping[str, Any], schema: Mapping[str, Param], run: Mapping[str, Any]):
        super().__init__(values)
        self.schema, self.run = dict(schema), dict(run)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td><code>{html.escape(name)}</code></td>"
                       + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"
                       for name, *cells in table_rows(self.schema, self.run))
        head = "".join(f"<th>{h}</th>" for h in ("parameter", "allowed", "this run", DEFAULTS, "meaning"))
        return f'<table style="font-size: 85%"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def shown_value(value: Any, *, longest: int = 6) -> str:
    """A parameter value as a table shows it: lists over ``longest`` entries abbreviated."""
    if isinstance(value, list) and len(value) > longest:
        return f"[{shown_value(value[0])}, {shown_value(value[1])}, …, {shown_value(value[-1])}] ({len(value)} values)"
    if isinstance(value, list):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _bound(value: float) -> str:
    """An end of an allowed interval: 1, 4294967295, 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def shown_defaults(param: Param) -> str:
    """The defaults of the three modes, "fast / book / paper", or one value when they agree."""
    shown = [shown_value(d) for d in param.defaults()]
    return shown[0] if len(set(shown)) == 1 else " / ".join(shown)



def table_rows(schema: Mapping[str, Param], run: Mapping[str, Any] | None = None) -> list[list[str]]:
    """One row per parameter: name, allowed values, [value in this run,] defaults, meaning."""
    return [[name, param.allowed(), *([shown_value(run[name])] if run is not None else []),
             shown_defaults(param), param.meaning] for name, param in schema.items()]


def markdown_table(schema: Mapping[str, Param]) -> str:
    """The parameter table of a chapter in Markdown (the README's rerun section holds one per chapter)."""
    lines = [f"| parameter | allowed | {DEFAULTS} | meaning |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(schema)]
    return "\n".join(lines)


def resolve(namespace: MutableMapping[str, Any], name: str, **table: Param) -> Sizes:
    """Check every parameter of chapter ``name`` in ``namespace`` (a notebook's ``globals()``), set
    each one that is None to its default for the mode (mode = "fast" if fast else scale), write the
    checked values back, and return the Sizes of ``table`` plus "mode".

    ``table`` declares every parameter of the parameters cell except COMMON ones, each as a Param
    (``count``, ``counts``, ``fractions``, ``flag``, ``seeds``, ``optional_seed``), and may narrow
    ``device`` (``cpu_device``); the meanings are the comments of the parameters cell of
    ``notebook_of(name)``, which must name the same parameters, set COMMON ones to their defaults and
    the others to None. A bad schema or value is a ValueError naming the parameter.
    """
    cell = parameters_cell(notebook_of(name))
    for key, param in table.items():
        if not isinstance(param, Param):
            raise ValueError(f"parameter {key!r}: declare it with chapter.count, counts, fractions, flag, "
                             f"seeds or optional_seed, got {param!r}")
        if key in COMMON and key != "device":
            raise ValueError(f"parameter {key!r} is common to every chapter: do not declare it")
    schema = {**COMMON, **table}
    if set(schema) != set(cell):
        raise ValueError(f"chapter {name!r}: declared parameters {sorted(set(schema) - set(cell))} are not in "
                         f"its parameters cell, and {sorted(set(cell) - set(schema))} of the cell are not declared")
    for key, param in schema.items():
        meaning = param.meaning or cell[key][1]
        if not meaning:
            raise ValueError(f"chapter {name!r}: parameter {key!r} needs its meaning as a comment in the "
                             "parameters cell")
        schema[key] = param = dataclasses.replace(param, meaning=meaning)
        for mode, default in zip(MODES, param.defaults()):
            param.check(f"{key} (default in {mode} mode)", default)
        literal = param.default if key in COMMON else None   # what the parameters cell must hold
        if cell[key][0] != literal:
            raise ValueError(f"chapter {name!r}: the parameters cell must set {key} = {literal!r} (its "
                             f"defaults are declared here), got {cell[key][0]!r}")
    for key in COMMON:
        namespace[key] = schema[key].check(key, namespace[key])
    mode = "fast" if namespace["fast"] else namespace["scale"]
    for key, param in table.items():
        if key in COMMON:
            continue
        given = namespace[key]
        value = param.defaults()[MODES.index(mode)] if given is None else given
        namespace[key] = param.check(key, value)
    return Sizes({**{key: namespace[key] for key in table if key not in COMMON}, "mode": mode}, schema,
                 {key: namespace[key] for key in schema})
