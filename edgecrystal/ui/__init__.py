"""`edgecrystal ui`: the review page over the results index (needs the `ui` extra:
Starlette, Uvicorn, Jinja2). See docs/review.md."""

INSTALL_HINT = "pip install 'edgecrystal[ui]'"
