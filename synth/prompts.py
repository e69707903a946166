"""The one Jinja2 environment: sandboxed, bounded in time and size per render (`synth.render_guard`),
StrictUndefined, over the spec's folder and the bundled prompts/."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.loaders import split_template_path

from synth.errors import TemplateError
from synth.ids import sha256_text
from synth.render_guard import GuardedEnvironment, RenderBudget, RenderLimitError, render_within

BUNDLED_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"
MESSAGE_BLOCKS = ("system", "user")

Message = dict[str, str]


@dataclass(frozen=True)
class Template:
    name: str
    sha256: str
    compiled: jinja2.Template
    source: str

    def may_read(self, names: set[str]) -> bool:
        """Whether the rendering may depend on any of `names`; conservatively yes if it includes, imports or
        extends another template (whose variables this one's syntax tree does not show)."""
        tree = self.compiled.environment.parse(self.source)
        if any(True for _ in meta.find_referenced_templates(tree)):
            return True
        return bool(meta.find_undeclared_variables(tree) & names)

    def render(self, variables: Mapping[str, Any]) -> list[Message]:
        """Renders to chat messages: `{% block system %}`/`{% block user %}` if defined, else one user message.

        One render is bounded in time and size (`synth.render_guard`): a template that spins or balloons is a
        TemplateError, like one that needs a missing variable.
        """
        try:
            budget = RenderBudget()
            context = self.compiled.new_context(dict(variables))
            blocks = [b for b in MESSAGE_BLOCKS if b in self.compiled.blocks]
            if not blocks:
                text = render_within(self.compiled.root_render_func(context), budget)
                return [{"role": "user", "content": text.strip()}]
            rendered = [(b, render_within(self.compiled.blocks[b](context), budget).strip()) for b in blocks]
            return [{"role": role, "content": text} for role, text in rendered if text]
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"template {self.name}: {exc.message}; give it in the spec's `vars:` or the topic's `vars:`"
            ) from None
        except RenderLimitError as exc:
            raise TemplateError(f"template {self.name}: {exc}") from None
        except SecurityError as exc:
            raise TemplateError(f"template {self.name}: blocked by the sandbox: {exc}") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {self.name}: {exc}") from None
        except (MemoryError, RecursionError, OverflowError) as exc:
            raise TemplateError(
                f"template {self.name}: too large or too deep to render ({type(exc).__name__})"
            ) from None


class RootedLoader(jinja2.FileSystemLoader):
    """A FileSystemLoader that stays inside its folders: a template, or anything it includes, that is a symlink
    leading out of the folder it was found in is refused (a shared prompts folder must not read local files).
    A folder that is itself a symlink is fine: its target is the root. Only regular files are found at all."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = split_template_path(template)
        for folder in self.searchpath:
            path = Path(folder, *pieces)
            if path.is_file():
                if not path.resolve().is_relative_to(Path(folder).resolve()):
                    raise TemplateError(
                        f"template {template!r}: {path} leads outside {folder} (to {path.resolve()}); copy it into "
                        "the prompts folder, or link the whole folder instead"
                    )
                break
        return super().get_source(environment, template)


class PromptLibrary:
    """Finds templates beside the spec first, then in ./prompts, then in synth's bundled prompts/."""

    def __init__(self, search_paths: Sequence[Path], sources: Mapping[str, str] | None = None) -> None:
        self.search_paths = [p for p in dict.fromkeys(search_paths) if p.is_dir()]
        loader: jinja2.BaseLoader = (
            jinja2.DictLoader(dict(sources)) if sources is not None else RootedLoader(self.search_paths)
        )
        self._env = GuardedEnvironment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["tojson_compact"] = _tojson_compact
        self._cache: dict[str, Template] = {}

    @classmethod
    def for_spec_dir(cls, spec_dir: Path) -> PromptLibrary:
        return cls([spec_dir, spec_dir / "prompts", Path.cwd() / "prompts", BUNDLED_PROMPTS])

    @classmethod
    def from_sources(cls, sources: Mapping[str, str]) -> PromptLibrary:
        """Templates shipped with a distributed job: a worker renders exactly what the submitter validated."""
        return cls([], sources)

    def get(self, name: str) -> Template:
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> Template:
        try:
            source, _, _ = self._env.loader.get_source(self._env, name)  # type: ignore[union-attr]
            compiled = self._env.from_string(source)
        except jinja2.TemplateNotFound:
            places = ", ".join(str(p) for p in self.search_paths) or "(no prompts folder found)"
            raise TemplateError(f"template {name!r} not found; looked in {places}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template {name} line {exc.lineno}: {exc.message}") from None
        compiled.name = name
        return Template(name=name, sha256=sha256_text(source), compiled=compiled, source=source)


def _tojson_compact(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True)
