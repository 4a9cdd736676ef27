"""Seed 000's request and response bodies."""

from pydantic import BaseModel, Field

from fidelia.kit.ids import IdField
from fidelia.kit.money import RawAmount


class GenerarPinIn(BaseModel):
    monto: RawAmount | None = Field(
        None, description="Invoice total; below the merchant's minimum no PIN is issued."
    )


class PinOut(BaseModel):
    ok: bool = True
    pin: str
    expires_at: str
    expires_in: int
    id_comercio: int
    whatsapp_url: str
    qr_svg_url: str
    qr_png_url: str


class ComercioOut(BaseModel):
    id: int
    nombre: str
    slug: str


class PromocionOut(BaseModel):
    id: int
    titulo: str
    descripcion: str
    puntos_requeridos: int


class ComercioResponse(BaseModel):
    ok: bool = True
    comercio: ComercioOut
    promociones: list[PromocionOut]


class ProximaRecompensa(BaseModel):
    titulo: str
    puntos_requeridos: int
    puntos_faltantes: int


class SaldoOut(BaseModel):
    tipo: str = Field(
        description='"individual", or "grupo" for a balance shared by a group of merchants'
    )
    nombre: str
    id_comercio: int
    comercios: list[int] = Field(description="Every merchant where this balance counts")
    puntos: int
    proxima_recompensa: ProximaRecompensa | None


class PuntosResponse(BaseModel):
    ok: bool = True
    total: int
    data: list[SaldoOut]


class CanjearIn(BaseModel):
    whatsapp: str | int
    id_comercio: IdField
    id_promocion: IdField
    # Beyond the guide: at a merchant that validates customers, the code the customer got
    # from the bot by writing «código» (6 digits, 10 minutes, single use).
    codigo: str | None = Field(default=None, max_length=12)


class CanjearResponse(BaseModel):
    ok: bool = True
    puntos_restantes: int
    recompensa: str
    mensaje: str


class ErrorOut(BaseModel):
    ok: bool = False
    codigo: str
    mensaje: str
