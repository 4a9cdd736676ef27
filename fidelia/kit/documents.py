"""Customer documents at the door: CPF/CNPJ validated with python-stdnum, or an e-mail."""

import re

from stdnum.br import cnpj, cpf
from stdnum.exceptions import ValidationError

from fidelia.kit.errors import InvalidInput

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def identify_document(raw: str) -> tuple[str, str]:
    """'123.456.789-09' -> ('cpf', '12345678909'); a CNPJ -> ('cnpj', digits);
    'Ana@X.com' -> ('email', 'ana@x.com'). Invalid check digits are refused."""
    text = (raw or "").strip()
    if "@" in text:
        if not EMAIL.match(text):
            raise InvalidInput(f"Not an e-mail address: {raw!r}", code="INVALID_DOCUMENT")
        return "email", text.lower()
    digits = re.sub(r"\D", "", text)
    try:
        if len(digits) == 11:
            return "cpf", cpf.validate(digits)
        if len(digits) == 14:
            return "cnpj", cnpj.validate(digits)
    except ValidationError as exc:
        raise InvalidInput(f"Invalid CPF/CNPJ: {raw!r}", code="INVALID_DOCUMENT") from exc
    raise InvalidInput(
        f"A customer is a CPF (11 digits), a CNPJ (14 digits) or an e-mail: {raw!r}",
        code="INVALID_DOCUMENT",
    )


def normalize_email(raw: str) -> str:
    text = (raw or "").strip()
    if not EMAIL.match(text):
        raise InvalidInput(f"Not an e-mail address: {raw!r}", code="INVALID_EMAIL")
    return text.lower()
