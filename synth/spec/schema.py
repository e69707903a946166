"""The JSON Schema of a job spec (`synth schema`), for editor completion and checking.

pydantic's schema of `JobSpec` describes the models after their before-validators ran, so alone it would refuse
the short forms a spec may use (`task: instructions`, `- exact_dedup`, `inputs: data/docs`, `json_mode: off` read
as a YAML 1.1 boolean). Those forms are put back here, and each task and verifier name (the verifiers from the
entry-point registry) gets its own options schema. Rules that span fields (a quota or a weight, not both) stay
with `synth validate`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from synth.spec.model import EXPAND_KEY, JobSpec
from synth.tasks import TASKS
from synth.verify import registry

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
TOPIC_NAME = r"^[^/]*[^/\s][^/]*$"  # non-empty, no '/': check_topic_name


def json_schema() -> dict[str, Any]:
    """The spec's schema with every task's and installed verifier's options, as `synth schema` prints it."""
    tasks = {name: TASKS[name].Options for name in sorted(TASKS)}
    verifiers = {name: registry.plugin(name).Options for name in registry.available()}
    models: list[type[BaseModel]] = [JobSpec, *tasks.values(), *verifiers.values()]
    refs, collected = models_json_schema([(model, "validation") for model in models])
    defs: dict[str, Any] = collected["$defs"]
    schema: dict[str, Any] = defs.pop(_name(refs[(JobSpec, "validation")]))
    defs["TaskName"] = {"type": "string", "enum": list(tasks), "description": "A generation task."}
    defs["VerifierName"] = {"type": "string", "enum": list(verifiers), "description": "An installed verifier."}
    task_options = {name: _name(refs[(model, "validation")]) for name, model in tasks.items()}
    verifier_options = {name: _name(refs[(model, "validation")]) for name, model in verifiers.items()}
    defs["Task"] = _plugin_ref("TaskName", task_options, defs, TASK_HELP)
    defs["Verifier"] = _plugin_ref("VerifierName", verifier_options, defs, VERIFIER_HELP)
    defs.pop("PluginRef", None)
    _short_forms(schema, defs)
    for definition in defs.values():
        _model_strings(definition)
    return {"$schema": SCHEMA_DIALECT, **schema, "title": "synth job spec", "$defs": defs}


MODEL_CONFIG_REF = {"$ref": "#/$defs/ModelConfig"}


def _model_strings(node: Any) -> Any:
    """Where an option takes a ModelConfig, the loader also takes a bare model string (`ModelConfig.of`)."""
    if node == MODEL_CONFIG_REF:
        return {"anyOf": [{"type": "string", "description": "A model string, e.g. openai/gpt-4o-mini."}, node]}
    if isinstance(node, dict):
        for key, value in node.items():
            node[key] = _model_strings(value)
    elif isinstance(node, list):
        node[:] = [_model_strings(value) for value in node]
    return node


TASK_HELP = "The task: its name (`task: instructions`) or a mapping of its name and options."
VERIFIER_HELP = "A verifier: its name (`- exact_dedup`) or a mapping of its name and options."


def _plugin_ref(names: str, options: dict[str, str], defs: dict[str, Any], description: str) -> dict[str, Any]:
    """A name, `{name, option: ...}` or `{name, options: {...}}`; each name with its own options (a $def)."""
    by_name = [
        {
            "if": {"properties": {"name": {"const": name}}},
            "then": {"anyOf": [_inline_options(defs[options_def]), _options_mapping(options_def)]},
        }
        for name, options_def in options.items()
    ]
    mapping = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"$ref": f"#/$defs/{names}"}},
        "allOf": by_name,
    }
    return {"description": description, "anyOf": [{"$ref": f"#/$defs/{names}"}, mapping]}


def _inline_options(options: dict[str, Any]) -> dict[str, Any]:
    """`{name: length, min_chars: 20}`: the options' own properties beside `name`, and nothing else."""
    return {
        "type": "object",
        "properties": {"name": True, **options.get("properties", {})},
        "required": ["name", *options.get("required", [])],
        "additionalProperties": False,
    }


def _options_mapping(options_def: str) -> dict[str, Any]:
    """`{name: length, options: {min_chars: 20}}`."""
    return {
        "type": "object",
        "properties": {"name": True, "options": {"$ref": f"#/$defs/{options_def}"}},
        "required": ["name", "options"],
        "additionalProperties": False,
    }


def _short_forms(schema: dict[str, Any], defs: dict[str, Any]) -> None:
    """Puts back what the before-validators accept, and the descriptions of fields that have none."""
    props = schema["properties"]
    props["task"] = {"$ref": "#/$defs/Task", "description": TASK_HELP}
    props["verifiers"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/Verifier"},
        "description": "Verifiers run in order on every sample; the first that rejects one says why.",
    }
    defs["InputRef"] = {
        "description": defs["InputRef"].get("description", ""),
        "anyOf": [{"type": "string", "minLength": 1, "description": "A file, a glob or a folder."}, defs["InputRef"]],
    }
    json_mode = defs["ModelParams"]["properties"]["json_mode"]
    defs["ModelParams"]["properties"]["json_mode"] = {
        "description": json_mode.get("description", ""),
        "anyOf": [{k: v for k, v in json_mode.items() if k != "description"}, {"type": "boolean"}],
    }
    props["topics"] = _topics(props["topics"], defs)
    for name, text in FIELD_HELP.items():
        props[name].setdefault("description", text)


def _topics(topics: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`topics:` is `{expand: {...}}` exactly when it has the key `expand`; else a tree of named topics."""
    expansion, tree = topics["oneOf"]
    tree["propertyNames"] = {"pattern": TOPIC_NAME}
    defs["TopicNode"]["propertyNames"] = {"pattern": TOPIC_NAME}
    return {
        "description": "The topic tree: each leaf with a quota (or a weight of `total`, or inputs), or "
        "`{expand: {...}}` for a tree a model grows.",
        "if": {"type": "object", "required": [EXPAND_KEY]},
        "then": expansion,
        "else": tree,
    }


def _name(ref: dict[str, str]) -> str:
    return ref["$ref"].rsplit("/", 1)[-1]


FIELD_HELP = {
    "name": "The job's name: letters, digits, '.', '_' and '-'; the default run directory is runs/<name>.",
    "description": "Free text for people; not sent to the model.",
    "output": "Where the run's records go.",
    "rate_limit": "Ceilings on requests and tokens per minute.",
    "retry": "How hard to try before an item ends as failed.",
    "params": "Sampling parameters sent with every generation call.",
}
