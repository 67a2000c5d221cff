"""Credit lines at the bank: limit policy (`policy`), accounts and ledger (`accounts`), daily
interest (`interest`); `BankError` is the one error type of the bank services."""

from server.credit.errors import BankError

__all__ = ["BankError"]
