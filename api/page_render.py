"""How every dashboard page is answered: its template rendered for the caller, with the
page headers.  Not a blueprint, so every page blueprint (``api.pages``, and any other
page of its own) renders through this one home.
"""

from __future__ import annotations

from flask import Response, render_template

from api.lookups import caller
from dljobs.lifecycle import ACTIVE, FINISHED, STATUSES

#: Points per kind the charts ask of ``?max_points=``: about two per pixel of a wide chart.
CHART_POINTS = 2000

#: What every page answers besides its HTML: never cached (it names a signed-in caller's
#: jobs), no Referer out, and scripts, styles and fetches from this origin only (uPlot sets
#: element styles, hence 'unsafe-inline' for styles alone).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
}


def html_answer(description: str) -> dict:
    """The OpenAPI answer of a page (``api.documentation``'s building blocks are JSON ones)."""
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def page(template: str, **context) -> Response:
    """A dashboard page: ``template`` (extending ``base.html``) rendered with :data:`PAGE_HEADERS`.

    Every template gets the caller (``caller``), the lifecycle's statuses and, for the
    scripts, which of them end a job (``finished``) and which may still run (``active``),
    and the charts' point budget (``chart_points``).
    """
    html = render_template(template, caller=caller(), statuses=[s.value for s in STATUSES],
                           finished=[s.value for s in STATUSES if s in FINISHED],
                           active=[s.value for s in STATUSES if s in ACTIVE],
                           chart_points=CHART_POINTS, **context)
    return Response(html, mimetype="text/html", headers=PAGE_HEADERS)
