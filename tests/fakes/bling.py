"""A fake Bling API v3 (built from shared/specs/bling-openapi-v3.json): a real HTTP server on
127.0.0.1 in a thread. It issues single-use authorization codes (the test plays the
merchant's browser), answers the token endpoint (Basic client_id:client_secret; codes and
refresh tokens are single-use and refresh tokens rotate, so a second refresh with the same
token fails as at Bling), revoke, the company, sales orders and contacts (lists paged with
``pagina``/``limite`` ≤ 100 answering ``{"data": [...]}``, filters), the sales module's
situations, an optional 3 requests/s limiter answering 429, and signs webhooks."""

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import httpx

from tests.fakes.serving import serve

BRT = ZoneInfo("America/Sao_Paulo")
SALES_MODULE = 98310
SITUATIONS = [
    {"id": 6, "nome": "Em aberto", "idHerdado": 0, "cor": "#E9DC40"},
    {"id": 9, "nome": "Atendido", "idHerdado": 0, "cor": "#3FB57A"},
    {"id": 12, "nome": "Cancelado", "idHerdado": 0, "cor": "#CACACA"},
    {"id": 15, "nome": "Em andamento", "idHerdado": 0, "cor": "#BC7EE5"},
    {"id": 24, "nome": "Verificado", "idHerdado": 0, "cor": "#6EA8D6"},
    {"id": 50001, "nome": "Entregue", "idHerdado": 9, "cor": "#118811"},
]
MODULES = [
    {"id": SALES_MODULE, "nome": "Vendas", "descricao": "Pedidos de Venda", "criarSituacoes": True},
    {"id": 98311, "nome": "Compras", "descricao": "Pedidos de Compra", "criarSituacoes": True},
]


@dataclass
class Company:
    id: str
    name: str
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    changed: dict[int, datetime] = field(default_factory=dict)  # order id -> last change


def _now() -> datetime:
    return datetime.now(BRT).replace(microsecond=0)


def _bling_time(raw: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=BRT)
        except ValueError:
            continue
    return None


class FakeBling:
    def __init__(
        self, client_id: str = "bling-client", client_secret: str = "bling-secret"
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.companies: dict[str, Company] = {}
        self.codes: dict[str, str] = {}
        self.access: dict[str, tuple[str, float]] = {}  # token -> company, expiry (monotonic)
        self.refresh_tokens: dict[str, str] = {}
        self.used_refresh: set[str] = set()
        self.grants: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # invalid_grant by grant type
        self.revoked: list[str] = []
        self.requests: list[str] = []
        self.fail_next: list[tuple[str, int]] = []  # (path prefix, status), once each
        self.rate_limit = False
        self.retry_after: str | None = "1"
        self.limited = 0
        self.refresh_delay = 0.0  # widen the window of a concurrent refresh
        self.access_lifetime = 21600
        self._window: dict[str, deque[float]] = {}
        self._next_id = 1000
        self.lock = threading.RLock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Bling's API (every answer is sized)
            disable_nagle_algorithm = True  # headers and body leave as two writes

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                fake._handle(self, "POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- test data ----------------------------------------------------------------------

    def new_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def add_company(self, company_id: str = "c0ffee", name: str = "Loja Bling LTDA") -> Company:
        with self.lock:
            return self.companies.setdefault(company_id, Company(company_id, name))

    def issue_code(self, company_id: str) -> str:
        """What Bling's authorize page gives the browser after the merchant says yes."""
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = company_id
        return code

    def add_contact(
        self,
        company: Company,
        nome: str = "Ana Souza",
        documento: str = "",
        celular: str = "",
        email: str = "",
        telefone: str = "",
        incluido: str | None = None,
    ) -> int:
        contact_id = self.new_id()
        with self.lock:
            company.contacts[contact_id] = {
                "id": contact_id,
                "nome": nome,
                "codigo": f"C{contact_id}",
                "situacao": "A",
                "numeroDocumento": documento,
                "telefone": telefone,
                "celular": celular,
                "email": email,
                "tipo": "J" if len("".join(c for c in documento if c.isdigit())) == 14 else "F",
                "dadosAdicionais": {"dataNascimento": "1990-08-24"},
                "_incluido": incluido or _now().strftime("%Y-%m-%d"),
            }
        return contact_id

    def add_order(
        self,
        company: Company,
        contact_id: int | None,
        produtos: str = "100.00",
        desconto: str = "0",
        unidade: str = "REAL",
        frete: str = "0",
        situacao: int = 6,
        data: str | None = None,
    ) -> int:
        order_id = self.new_id()
        with self.lock:
            contact = company.contacts.get(contact_id or 0, {})
            company.orders[order_id] = {
                "id": order_id,
                "numero": len(company.orders) + 1,
                "numeroLoja": f"L-{order_id}",
                "data": data or _now().strftime("%Y-%m-%d"),
                "dataSaida": data or _now().strftime("%Y-%m-%d"),
                "dataPrevista": data or _now().strftime("%Y-%m-%d"),
                "totalProdutos": float(produtos),
                "contato": {
                    "id": contact_id or 0,
                    "nome": contact.get("nome", ""),
                    "tipoPessoa": contact.get("tipo", "F"),
                    "numeroDocumento": contact.get("numeroDocumento", ""),
                },
                "situacao": {"id": situacao, "valor": 0},
                "loja": {"id": 0, "unidadeNegocio": {"id": 0}},
                "desconto": {"valor": float(desconto), "unidade": unidade},
                "transporte": {"frete": float(frete), "fretePorConta": 0},
                "outrasDespesas": 0,
                "itens": [
                    {
                        "id": order_id * 10,
                        "codigo": "BLG-5",
                        "quantidade": 1,
                        "valor": float(produtos),
                        "descricao": "Produto do Bling",
                    }
                ],
                "parcelas": [],
            }
            self._total(company.orders[order_id])
            company.changed[order_id] = _now()
        return order_id

    @staticmethod
    def _total(order: dict[str, Any]) -> None:
        products = order["totalProdutos"]
        discount = order["desconto"]["valor"]
        if order["desconto"]["unidade"] == "PERCENTUAL":
            discount = products * discount / 100
        order["total"] = round(products - discount + order["transporte"]["frete"], 2)

    def update_order(self, company: Company, order_id: int, **changes: Any) -> None:
        with self.lock:
            order = company.orders[order_id]
            if "situacao" in changes:
                order["situacao"] = {"id": changes.pop("situacao"), "valor": 0}
            if "produtos" in changes:
                order["totalProdutos"] = float(changes.pop("produtos"))
            if "desconto" in changes:
                order["desconto"]["valor"] = float(changes.pop("desconto"))
            order.update(changes)
            self._total(order)
            company.changed[order_id] = _now()

    def delete_order(self, company: Company, order_id: int) -> None:
        with self.lock:
            company.orders.pop(order_id)
            company.changed.pop(order_id, None)

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access = {t: (c, 0.0) for t, (c, _e) in self.access.items()}

    def grant_count(self, kind: str) -> int:
        with self.lock:
            return self.grants[kind]

    # -- webhooks -----------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.client_secret.encode(), body, hashlib.sha256).hexdigest()

    def event_body(
        self, company: Company, event: str, order_id: int, event_id: str | None = None
    ) -> bytes:
        with self.lock:
            order = company.orders.get(order_id)
            data = (
                {k: order[k] for k in ("id", "numero", "total", "contato", "situacao")}
                if order and event != "order.deleted"
                else {"id": order_id}
            )
        payload = {
            "eventId": event_id or secrets.token_hex(12),
            "date": _now().isoformat(),
            "version": "v1",
            "event": event,
            "companyId": company.id,
            "data": data,
        }
        return json.dumps(payload).encode()

    def send_webhook(
        self, target: Any, company: Company, event: str, order_id: int, event_id: str | None = None
    ) -> Any:
        """POST a signed delivery to Fidelia (``target``: a TestClient or a base URL)."""
        body = self.event_body(company, event, order_id, event_id)
        headers = {"Content-Type": "application/json", "X-Bling-Signature-256": self.sign(body)}
        if isinstance(target, str):
            return httpx.post(f"{target}/webhooks/bling", content=body, headers=headers)
        return target.post("/webhooks/bling", content=body, headers=headers)

    # -- the server ---------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(request.path)
        path, query = parsed.path, parse_qs(parsed.query)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append(f"{method} {path}")
            for i, (prefix, status) in enumerate(self.fail_next):
                if path.startswith(prefix):
                    del self.fail_next[i]
                    return self._answer(request, status, _error("SERVER_ERROR", "injected"))
        if path == "/oauth/token" and method == "POST":
            return self._token(request, parse_qs(body.decode()))
        if path == "/oauth/revoke" and method == "POST":
            return self._revoke(request, parse_qs(body.decode()))
        company = self._bearer(request)
        if company is None:
            return self._answer(request, 401, _error("invalid_token", "invalid_token"))
        if self.rate_limit and self._limited(company.id):
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return self._answer(
                request, 429, _error("TOO_MANY_REQUESTS", "Limite de requisições"), headers
            )
        with self.lock:
            status, data = self._route(company, path, query)
        self._answer(request, status, data)

    def _limited(self, key: str) -> bool:
        with self.lock:
            window = self._window.setdefault(key, deque())
            at = time.monotonic()
            while window and window[0] < at - 1.0:
                window.popleft()
            if len(window) >= 3:
                self.limited += 1
                return True
            window.append(at)
            return False

    def _basic_ok(self, request: BaseHTTPRequestHandler) -> bool:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return hmac.compare_digest(request.headers.get("Authorization", ""), f"Basic {expected}")

    def _issue(self, company_id: str) -> dict[str, Any]:
        access, refresh = secrets.token_hex(20), secrets.token_hex(20)
        self.access[access] = (company_id, time.monotonic() + self.access_lifetime)
        self.refresh_tokens[refresh] = company_id
        return {
            "access_token": access,
            "expires_in": self.access_lifetime,
            "token_type": "Bearer",
            "scope": "98309 98310 318257570",
            "refresh_token": refresh,
        }

    def _token(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        if not self._basic_ok(request):
            return self._answer(request, 401, _error("invalid_client", "invalid client"))
        grant = (form.get("grant_type") or [""])[0]
        if grant == "authorization_code":
            code = (form.get("code") or [""])[0]
            with self.lock:
                company_id = self.codes.pop(code, None)
                if company_id is None:
                    self.refused[grant] += 1
                    return self._answer(request, 400, _error("invalid_grant", "Invalid code"))
                self.grants[grant] += 1
                return self._answer(request, 200, self._issue(company_id))
        if grant == "refresh_token":
            token = (form.get("refresh_token") or [""])[0]
            if self.refresh_delay:
                time.sleep(self.refresh_delay)
            with self.lock:
                company_id = self.refresh_tokens.pop(token, None)
                if company_id is None:
                    self.refused[grant] += 1
                    return self._answer(
                        request, 400, _error("invalid_grant", "Invalid refresh token")
                    )
                self.used_refresh.add(token)
                self.grants[grant] += 1
                return self._answer(request, 200, self._issue(company_id))
        return self._answer(request, 400, _error("unsupported_grant_type", grant))

    def _revoke(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        if not self._basic_ok(request):
            return self._answer(request, 401, _error("invalid_client", "invalid client"))
        token = (form.get("token") or [""])[0]
        with self.lock:
            found = self.access.pop(token, None) or self.refresh_tokens.pop(token, None)
            if found:
                self.revoked.append(token)
        self._answer(request, 200, {})

    def _bearer(self, request: BaseHTTPRequestHandler) -> Company | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        with self.lock:
            found = self.access.get(token)
            if not header.startswith("Bearer ") or found is None or found[1] < time.monotonic():
                return None
            return self.companies.get(found[0])

    def _route(
        self, company: Company, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        one = {k: v[0] for k, v in query.items()}
        if path == "/empresas/me/dados-basicos":
            return 200, {
                "data": {
                    "id": company.id,
                    "nome": company.name,
                    "cnpj": "12.345.657/8910-11",
                    "email": "empresa@email.com",
                    "dataContrato": "2024-12-31",
                }
            }
        if path == "/situacoes/modulos":
            return 200, {"data": MODULES}
        if path == f"/situacoes/modulos/{SALES_MODULE}":
            return 200, {"data": SITUATIONS}
        if path in ("/pedidos/vendas", "/contatos"):
            try:
                page, limit = int(one.get("pagina", "1")), int(one.get("limite", "100"))
            except ValueError:
                return 400, _error("VALIDATION_ERROR", "pagina/limite")
            if not 1 <= limit <= 100 or page < 1:
                return 400, _error("VALIDATION_ERROR", "limite must be 1..100")
            window = slice((page - 1) * limit, page * limit)
            rows = (
                self._orders(company, one, query, window)
                if path == "/pedidos/vendas"
                else self._contacts(company, one)[window]
            )
            return 200, {"data": rows}
        if path.startswith("/pedidos/vendas/"):
            order = company.orders.get(_int(path.rsplit("/", 1)[1]))
            if order is None:
                return 404, _error("RESOURCE_NOT_FOUND", "Pedido não encontrado")
            return 200, {"data": json.loads(json.dumps(order))}
        if path.startswith("/contatos/"):
            contact = company.contacts.get(_int(path.rsplit("/", 1)[1]))
            if contact is None:
                return 404, _error("RESOURCE_NOT_FOUND", "Contato não encontrado")
            return 200, {"data": {k: v for k, v in contact.items() if not k.startswith("_")}}
        return 404, _error("RESOURCE_NOT_FOUND", path)

    def _orders(
        self,
        company: Company,
        one: dict[str, str],
        query: dict[str, list[str]],
        window: slice,
    ) -> list[dict[str, Any]]:
        """One page of the filtered list (only that page is copied: the benchmark pages
        through tens of thousands of orders)."""
        situations = {int(s) for s in query.get("idsSituacoes[]", [])}
        changed_since = _bling_time(one.get("dataAlteracaoInicial", ""))
        matching = []
        for order_id in sorted(company.orders):
            order = company.orders[order_id]
            if one.get("dataInicial") and order["data"] < one["dataInicial"]:
                continue
            if one.get("dataFinal") and order["data"] > one["dataFinal"]:
                continue
            if changed_since and company.changed[order_id] < changed_since:
                continue
            if one.get("idContato") and str(order["contato"]["id"]) != one["idContato"]:
                continue
            if situations and order["situacao"]["id"] not in situations:
                continue
            matching.append(order)
        rows = []
        for order in matching[window]:
            rows.append(
                {
                    k: order[k]
                    for k in (
                        "id",
                        "numero",
                        "numeroLoja",
                        "data",
                        "dataSaida",
                        "dataPrevista",
                        "totalProdutos",
                        "total",
                        "contato",
                        "situacao",
                        "loja",
                    )
                }
            )
        return json.loads(json.dumps(rows))

    def _contacts(self, company: Company, one: dict[str, str]) -> list[dict[str, Any]]:
        rows = []
        for contact_id in sorted(company.contacts):
            contact = company.contacts[contact_id]
            since = one.get("dataInclusaoInicial")
            if since and contact["_incluido"] < since[:10]:
                continue
            rows.append(
                {
                    k: contact[k]
                    for k in (
                        "id",
                        "nome",
                        "codigo",
                        "situacao",
                        "numeroDocumento",
                        "telefone",
                        "celular",
                    )
                }
            )
        return rows

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        status: int,
        data: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        raw = json.dumps(data).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(raw)


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "description": message}}


def later(seconds: int) -> datetime:
    return _now() + timedelta(seconds=seconds)
