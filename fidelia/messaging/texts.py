"""What the bot says, per locale (the merchant's; Spanish by default)."""
# ruff: noqa: E501  (one message a line reads better than wrapped strings)

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "ask_name": "¡Sumaste {points} {unit} en {merchant}! 🎉 Es tu primera vez: ¿cómo te llamás?",
        "ask_name_again": "No entendí tu nombre. ¿Cómo te llamás?",
        "still_ask_name": "Y contanos: ¿cómo te llamás?",
        "credited": "¡Gracias, {name}! Sumaste {points} {unit} en {merchant}. Tu saldo: {balance}.",
        "welcome": "¡Listo, {name}! Tu saldo en {merchant}: {balance}.",
        "missing": "Te faltan {missing} para «{reward}».",
        "can_redeem": "¡Ya podés canjear «{reward}»! Pedilo en caja.",
        "failed_pin": "No pudimos activar el PIN {pin}. Revisá el número en tu factura: cada PIN se usa una sola vez y vence.",
        "guarded": "Estamos recibiendo demasiados intentos. Probá de nuevo en unos minutos.",
        "too_many": "Demasiados intentos fallidos. Probá de nuevo en una hora.",
        "balances": "Tus puntos:\n{lines}",
        "no_points": "Todavía no tenés puntos. Enviá el PIN de tu factura para sumar.",
        "help": "Hola 👋 Enviá el PIN de tu factura para sumar puntos, o escribí «puntos» para ver tu saldo.",
        "redeemed": "¡Canje exitoso! Aplicá el beneficio en la factura.",
        "birthday": "🎂 {merchant}: ¡feliz cumpleaños! Tu regalo de {gift}: código {code}.",
        "short_code": "{merchant}: tu código de acceso es {code}. Vence en 10 minutos.",
        "spent": "{merchant}: se usaron {spent} de tu saldo en «{what}». Te queda: {balance}. Si no fuiste vos, avisale al comercio.",
        "spent_payment": "el pago de una compra",
        "redeem_code": "{merchant}: tu código para canjear es {code}. Vence en 10 minutos: dáselo al cajero.",
        "no_merchant_yet": "Para pedir un código, primero activá un PIN de tu factura en el comercio.",
        "unit_one": "punto",
        "unit_many": "puntos",
    },
    "pt": {
        "ask_name": "Você ganhou {points} {unit} em {merchant}! 🎉 É sua primeira vez: qual é o seu nome?",
        "ask_name_again": "Não entendi seu nome. Qual é o seu nome?",
        "still_ask_name": "E conta pra gente: qual é o seu nome?",
        "credited": "Obrigado, {name}! Você ganhou {points} {unit} em {merchant}. Seu saldo: {balance}.",
        "welcome": "Pronto, {name}! Seu saldo em {merchant}: {balance}.",
        "missing": "Faltam {missing} para «{reward}».",
        "can_redeem": "Você já pode resgatar «{reward}»! Peça no caixa.",
        "failed_pin": "Não conseguimos ativar o PIN {pin}. Confira o número na sua nota: cada PIN vale uma vez só e expira.",
        "guarded": "Estamos recebendo tentativas demais. Tente de novo em alguns minutos.",
        "too_many": "Muitas tentativas erradas. Tente de novo em uma hora.",
        "balances": "Seus pontos:\n{lines}",
        "no_points": "Você ainda não tem pontos. Envie o PIN da sua nota para ganhar.",
        "help": "Olá 👋 Envie o PIN da sua nota para ganhar pontos, ou escreva «pontos» para ver seu saldo.",
        "redeemed": "Resgate realizado! Aplique o benefício na nota.",
        "birthday": "🎂 {merchant}: feliz aniversário! Seu presente de {gift}: código {code}.",
        "short_code": "{merchant}: seu código de acesso é {code}. Vale por 10 minutos.",
        "spent": "{merchant}: foram usados {spent} do seu saldo em «{what}». Saldo restante: {balance}. Se não foi você, avise a loja.",
        "spent_payment": "o pagamento de uma compra",
        "redeem_code": "{merchant}: seu código para resgatar é {code}. Vale 10 minutos: informe ao caixa.",
        "no_merchant_yet": "Para pedir um código, ative antes um PIN da sua nota na loja.",
        "unit_one": "ponto",
        "unit_many": "pontos",
    },
    "en": {
        "ask_name": "You earned {points} {unit} at {merchant}! 🎉 It's your first time: what's your name?",
        "ask_name_again": "I didn't get your name. What's your name?",
        "still_ask_name": "And tell us: what's your name?",
        "credited": "Thanks, {name}! You earned {points} {unit} at {merchant}. Your balance: {balance}.",
        "welcome": "All set, {name}! Your balance at {merchant}: {balance}.",
        "missing": "{missing} more for “{reward}”.",
        "can_redeem": "You can redeem “{reward}” now! Ask at the counter.",
        "failed_pin": "We couldn't activate PIN {pin}. Check the number on your receipt: each PIN works once and expires.",
        "guarded": "We're getting too many attempts right now. Please try again in a few minutes.",
        "too_many": "Too many failed attempts. Please try again in an hour.",
        "balances": "Your points:\n{lines}",
        "no_points": "You have no points yet. Send the PIN on your receipt to earn some.",
        "help": "Hi 👋 Send the PIN on your receipt to earn points, or write “points” to see your balance.",
        "redeemed": "Redeemed! Apply the benefit on the invoice.",
        "birthday": "🎂 {merchant}: happy birthday! Your gift of {gift}: code {code}.",
        "short_code": "{merchant}: your login code is {code}. It expires in 10 minutes.",
        "spent": "{merchant}: {spent} of your balance was used for «{what}». Balance left: {balance}. If this wasn't you, tell the shop.",
        "spent_payment": "paying for a purchase",
        "redeem_code": "{merchant}: your code to redeem is {code}. It expires in 10 minutes: give it to the cashier.",
        "no_merchant_yet": "To get a code, first activate a PIN from your receipt at the shop.",
        "unit_one": "point",
        "unit_many": "points",
    },
}

GREETINGS = {
    "hola",
    "hi",
    "hello",
    "oi",
    "olá",
    "ola",
    "buenas",
    "buenos días",
    "bom dia",
    "hey",
    "ayuda",
    "help",
    "ajuda",
}
BALANCE_WORDS = {"puntos", "saldo", "points", "balance", "pontos", "punto", "ponto", "point"}
# A code to redeem at the counter (merchants that validate customers).
CODE_WORDS = {"código", "codigo", "code", "canjear", "resgatar", "redeem"}


def say(locale: str, key: str, **values: object) -> str:
    lang = (locale or "es").split("_")[0].split("-")[0].lower()
    return TEXTS.get(lang, TEXTS["es"])[key].format(**values)


def unit(locale: str, points: int) -> str:
    return say(locale, "unit_one" if abs(points) == 1 else "unit_many")
