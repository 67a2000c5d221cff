"""The dashboard's ASGI application: five read-only pages, their JSON, and the live stamp.

Every request must come from the bank's operator: the TLS layer (`server.dashboard.serve`)
already required a client certificate signed by the bank's CA; `OperatorOnly` reads it from the
ASGI TLS extension, refuses a revoked one or one whose role is not `operator` (403, one line),
and refuses a request that arrived without one (a server started without mutual TLS). Pages
are HTML rendered on the server (Jinja2) with inline SVG charts; `/api/<page>` answers the same
dicts as JSON; `/api/stamp` changes when the data does, and the pages poll it to refresh.

Answers are gzip-compressed (a year of Lending is 43 KB of HTML, 8 KB compressed): fewer bytes
per load on the bank's network, and faster loads measured with `bench/dashboard.py`. No body
holds a secret that compressed sizes could leak (BREACH): no tokens or cookies, the identity is
the TLS client certificate. Pages name an empty favicon, so a load is one request, not two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from federation.identity import IdentityError, identity_of
from federation.money import yuan
from server.dashboard import svg
from server.dashboard.data import PAGES, DashboardData, DashboardError
from server.security.identity import AuthError, RevocationList
from server.security.roles import OPERATOR

HERE = Path(__file__).parent
TITLES = {
    "lending": ("信贷", "Lending"),
    "models": ("模型", "Models"),
    "receivables": ("应收账款", "Receivables"),
    "leasing": ("设备租赁", "Leasing"),
    "anchoring": ("上链存证", "Anchoring"),
}
TIERS = (
    ("normal", "正常", "normal"),
    ("special_mention", "关注", "special mention"),
    ("substandard", "次级", "substandard"),
    ("doubtful", "可疑", "doubtful"),
    ("loss", "损失", "loss"),
)


class OperatorOnly:
    """Refuses every HTTP request whose TLS client certificate is missing, revoked, or not the
    bank operator's (ASGI middleware; lifespan messages pass)."""

    def __init__(self, app: ASGIApp, revocations: RevocationList | None, role: str = OPERATOR) -> None:
        self.app = app
        self.revocations = revocations
        self.role = role

    def refusal(self, scope: Scope) -> str | None:
        tls = (scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or []
        if not chain:
            return "no client certificate: the dashboard needs the bank operator's certificate (mutual TLS)"
        try:
            who = identity_of(chain[0].encode() if isinstance(chain[0], str) else chain[0])
            if self.revocations is not None and (at := self.revocations.revoked_at(who.serial)) is not None:
                return f"certificate serial {who.serial} of {who.name} was revoked at {at}"
        except (IdentityError, AuthError) as exc:
            return str(exc)
        if who.role != self.role:
            return f"{who.name} holds role {who.role}; the dashboard is for the bank's {self.role}s only"
        scope.setdefault("state", {})["operator"] = who.name
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            why = self.refusal(scope)
            if why is not None:
                await PlainTextResponse(f"refused: {why}\n", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def _money(value: int | None) -> str:
    return "-" if value is None else yuan(value)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(pct=_pct, money=_money, num=_num, duration=_duration)
    # the style and the live-update script go inline: a page is one request (no revalidation
    # round trips per navigation), and still nothing comes from outside the bank
    env.globals.update(
        PAGES=PAGES,
        TITLES=TITLES,
        TIERS=TIERS,
        STYLE=(HERE / "static" / "dashboard.css").read_text(),
        SCRIPT=(HERE / "static" / "live.js").read_text(),
    )
    return env


def charts(page: str, data: dict[str, Any]) -> dict[str, str]:
    """The page's SVG charts from the same dict the page and `/api/<page>` show."""
    if page == "lending":
        rows = data["metrics"]["months"]
        months = [m["month"] for m in rows]
        return {
            "applications": svg.bar_chart(months, [m["applications"] for m in rows], "申请量 applications per month"),
            "approval": svg.bar_chart(
                months,
                [None if m["approval_rate"] is None else m["approval_rate"] * 100 for m in rows],
                "通过率 approval rate (%)",
                "{:.1f}",
            ),
            "npl": svg.bar_chart(
                months,
                [None if m["npl_ratio"] is None else m["npl_ratio"] * 100 for m in rows],
                "不良率 NPL ratio (%)",
                "{:.2f}",
            ),
            "tiers": svg.stacked_bars(
                months,
                {
                    t: [None if m["balances_by_tier_fen"] is None else m["balances_by_tier_fen"][t] / 100 for m in rows]
                    for t, _, _ in TIERS
                },
                "余额 balances by tier (yuan)",
            ),
        }
    if page == "models":
        out = {}
        for v in data["versions"]:
            rounds = (v.get("report") or {}).get("rounds") or []
            out[v["version"]] = svg.line_chart(
                [str(r["round"]) for r in rounds],
                {"AUC": [r["auc"] for r in rounds], "KS": [r["ks"] for r in rounds]},
                f"{v['version']}: AUC / KS per round",
                top=1.0,
            )
        return out
    if page == "receivables" and data.get("available"):
        seconds = data["turnaround"]["seconds"]
        return {
            "states": svg.bar_chart(list(data["states"]), list(data["states"].values()), "receivables by state"),
            "turnaround": svg.bar_chart(
                [f"#{i + 1}" for i in range(len(seconds))], [s / 60 for s in seconds], "turnaround (minutes)", "{:.1f}"
            ),
        }
    if page == "leasing" and data["geofence"] is not None:
        return {
            "map": svg.device_map(
                data["devices"], data["geofence"]["box"], data["geofence"]["zones"], "设备地图 device map"
            )
        }
    if page == "anchoring":
        kinds = data["kinds"]
        return {
            "kinds": svg.stacked_bars(
                list(kinds),
                {"anchored": [k["anchored"] for k in kinds.values()], "queued": [k["queued"] for k in kinds.values()]},
                "records by kind",
            )
        }
    return {}


def create_app(data: DashboardData, revocations: RevocationList | None) -> ASGIApp:
    """The dashboard over `data`, behind `OperatorOnly` (with the CA's revocation list)."""
    env = environment()

    async def page_view(request: Request) -> Response:
        page = request.path_params["page"]
        if page not in PAGES:
            return PlainTextResponse(f"no page {page!r}; expected one of {', '.join(PAGES)}\n", status_code=404)
        content, stamp, _ = await run_in_threadpool(data.page, page)
        extra: dict[str, Any] = {}
        if page == "anchoring" and (request.query_params.get("kind") or request.query_params.get("ref")):
            kind, ref = request.query_params.get("kind", ""), request.query_params.get("ref", "")
            try:
                extra["lookup"] = {"kind": kind, "ref": ref, "proof": await run_in_threadpool(data.proof, kind, ref)}
            except DashboardError as exc:
                extra["lookup"] = {"kind": kind, "ref": ref, "error": str(exc)}
        html = env.get_template(f"{page}.html").render(
            page=page,
            data=content,
            charts=charts(page, content),
            stamp=stamp,
            operator=request.scope.get("state", {}).get("operator", ""),
            **extra,
        )
        return HTMLResponse(html)

    async def api_view(request: Request) -> Response:
        page = request.path_params["page"]
        if page == "stamp":
            return JSONResponse({"stamp": await run_in_threadpool(data.stamp)})
        if page not in PAGES:
            return JSONResponse({"error": f"no page {page!r}"}, status_code=404)
        content, stamp, _ = await run_in_threadpool(data.page, page)
        return JSONResponse(content, headers={"X-Dashboard-Stamp": stamp})

    async def home(request: Request) -> Response:
        return RedirectResponse("/lending")

    return OperatorOnly(
        Starlette(
            routes=[
                Route("/", home),
                Route("/api/{page}", api_view),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
                Route("/{page}", page_view),
            ],
            middleware=[Middleware(GZipMiddleware, minimum_size=1024)],
        ),
        revocations,
    )
