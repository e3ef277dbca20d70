"""The job spec: one JSON document naming data, model and training recipe.

``validate`` (a ``ValidatedSpec``, or every problem listed), ``infer`` (the model table
without data), ``build`` (an initialized Model) and ``job_spec_json_schema``
(the JSON Schema composed from every registered component's own schema).
See docs/spec.md.
"""

from dlcore.spec.build import build, seed_generators
from dlcore.spec.infer import infer
from dlcore.spec.schema import job_spec_json_schema
from dlcore.spec.validate import ValidatedSpec, validate

__all__ = ["ValidatedSpec", "build", "infer", "job_spec_json_schema", "seed_generators", "validate"]
