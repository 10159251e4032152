"""The property managers' dashboard: server-rendered pages in zh-CN (by
default) and English, built on the same crud functions, route functions and
scoping as the JSON API. `cloud.main` includes `router` and serves
`static/` at /static."""

from .router import router

__all__ = ["router"]
