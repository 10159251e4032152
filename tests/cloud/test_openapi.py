"""The OpenAPI document describes every route, and DESIGN's fixed routes
are there with their methods."""

from fastapi.routing import APIRoute

FIXED = {
    ("POST", "/api/v1/ingest"),
    ("POST", "/api/v1/devices"),
    ("GET", "/api/v1/devices/{id}"),
    ("GET", "/api/v1/devices/{id}/readings"),
    ("POST", "/api/v1/devices/{id}/commands"),
    ("GET", "/api/v1/alarms"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/communities"),
    ("POST", "/api/v1/gateways"),
}


def app_routes(app):
    """(method, path) of every JSON API route (under /api/), however the
    routers nest them. (The dashboard's HTML pages are not API.)"""
    try:  # FastAPI with lazily included routers
        from fastapi.routing import iter_route_contexts

        routes = [(r.path, r.methods, r.original_route) for r in iter_route_contexts(app.routes)]
    except ImportError:  # pragma: no cover - older FastAPI: a flat list
        routes = [(r.path, r.methods, r) for r in app.routes]
    return {
        (method, path)
        for path, methods, route in routes
        if isinstance(route, APIRoute) and path.startswith("/api/")
        for method in methods
    }


def test_openapi_lists_every_route(client, app):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    documented = {
        (method.upper(), path) for path, item in r.json()["paths"].items() for method in item
    }
    routes = app_routes(app)
    assert len(routes) > 50
    assert routes == documented
    assert documented >= FIXED


def test_readings_route_documents_its_query(client):
    spec = client.get("/openapi.json").json()
    params = {
        p["name"] for p in spec["paths"]["/api/v1/devices/{id}/readings"]["get"]["parameters"]
    }
    assert {"id", "n", "from", "to"} <= params
    ingest = spec["paths"]["/api/v1/ingest"]["post"]
    assert "application/cbor" in ingest["requestBody"]["content"]
