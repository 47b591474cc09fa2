"""Refusals: a request answered with an error status and a JSON body instead of a result. A
BadRequest breaks the contract (4xx, or 507 where it does not fit in memory) and names its field;
an InternalError (500) failed for a reason of ours, not its own."""


class Refusal(Exception):
    """An answer with `status` and the JSON `body()`; `field` names what it is about."""

    def __init__(self, field: str, message: str, status: int):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def body(self) -> dict:
        raise NotImplementedError


class BadRequest(Refusal, ValueError):
    """A request that breaks the contract: answered with `status` and a JSON body naming `field`."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(field, message, status)

    def body(self) -> dict:
        return {"code": self.status, "type": "BadRequest", "field": self.field,
                "message": f"{self.field}: {self.message}"}


class InternalError(Refusal):
    """A request that failed for a reason of ours, not its own: answered 500, alone in its batch."""

    def __init__(self, message: str):
        super().__init__("request", message, 500)

    def body(self) -> dict:
        return {"code": self.status, "type": "InternalServerError", "message": self.message}
