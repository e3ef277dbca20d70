"""The CLI tests run against the service the e2e tests start: ``dljobs up``, as a person does."""

from tests.e2e.conftest import embedded_service, make_spec  # noqa: F401 - fixtures, shared not copied
